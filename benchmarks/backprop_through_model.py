"""Backpropagation through a model: the policy gradient of an H-step model return, as H grows.

    python benchmarks/backprop_through_model.py [--seeds 8] [--opt-seeds 8] [--opt-steps 1000]
                                                [--mbpo-seeds 8] [--out DIR]
    python benchmarks/backprop_through_model.py --replot DIR/results.json --out DIR

The notes' first idea for using a model: maximise the model's return by the chain rule through
H chained model steps into the policy, J_H(theta) = mean_s0 sum_{t<H} r(s_t, pi_theta(s_t)),
s_{t+1} = f(s_t, pi_theta(s_t)). This script measures on Pendulum-v1

1. the gradient norm ||dJ_H / dtheta|| at random policy initialisations (``--seeds`` of them),
   for H = 1 .. 100, through (a) gymnax Pendulum's own differentiable transitions
   (``env.with_transition_gradients()``) and (b) a learned model: MBPO's 7 x 4 x 200 ensemble
   fitted on 10,000 random-policy transitions, stepped with the mean of its elites' means (a
   smooth, deterministic model). Reward: Pendulum's known reward in both, so only the dynamics
   differ. Printed: median, range and max / min ratio over seeds, and the norm per unit of
   horizon (the gradient of the mean per-step reward, which the optimiser below follows);
2. policy optimisation with it: Adam on -J_H / H for ``--opt-steps`` steps (16 start states,
   ``--opt-starts``, drawn from Pendulum's reset distribution each step), for H = 10, 25, 50,
   100 (``--opt-horizons``), through both models, from the first ``--opt-seeds``
   initialisations; then the policy's return on the real environment (10 episodes of 200
   steps, median over seeds);
3. beside it, MBPO's preset on the same task (``--mbpo-seeds`` seeds, 2,000 env steps), which
   uses the model only for short branched rollouts that feed SAC.

Prints tables and the machine, saves ``grad_norm.png``, ``return_vs_horizon.png`` and
``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, random_policy_transitions  # noqa: E402

from purembrl import buffer, dynamics  # noqa: E402
from purembrl.algos import mbpo  # noqa: E402
from purembrl.envs import known  # noqa: E402

HORIZONS = (1, 2, 5, 10, 20, 30, 50, 75, 100)
OPT_HORIZONS = (10, 25, 50, 100)
STARTS = 64


class Policy(nn.Module):
    """Deterministic torque in [-2, 2]: 2 tanh(MLP(obs))."""

    @nn.compact
    def __call__(self, obs):
        x = nn.tanh(nn.Dense(64)(obs))
        x = nn.tanh(nn.Dense(64)(x))
        return 2.0 * jnp.tanh(nn.Dense(1)(x))


POLICY = Policy()


MODEL = dynamics.EnsembleConfig()  # MBPO's defaults


def obs_of(state):
    return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot], -1)


def start_states(env, env_params, key, n=STARTS):
    return jax.vmap(env.reset_env, in_axes=(0, None))(jax.random.split(key, n), env_params)[1]


def true_return(env, env_params, horizon):
    """J_H through gymnax's differentiable Pendulum: (params, states0) -> mean H-step return."""
    diff_env = env.with_transition_gradients()

    def value(params, state0):
        def step(state, _):
            obs = obs_of(state)
            action = POLICY.apply(params, obs)
            _, state, reward, _, _ = jax.vmap(diff_env.step_env, in_axes=(None, 0, 0, None))(
                jax.random.key(0), state, action, env_params)  # deterministic dynamics
            return state, reward

        _, rewards = jax.lax.scan(step, state0, None, length=horizon)
        return rewards.sum(0).mean()

    return value


def model_return(model_state, horizon):
    """J_H through the learned ensemble (mean of the elites' means) with the known reward."""

    def value(params, state0):
        def step(obs, _):
            action = POLICY.apply(params, obs)
            mean, _ = dynamics.predict(model_state, MODEL, obs, action)
            next_obs = obs + mean[model_state.elites].mean(0)[:, 1:]  # [reward, delta obs]
            return next_obs, known.pendulum_reward(obs, action, next_obs)

        _, rewards = jax.lax.scan(step, obs_of(state0), None, length=horizon)
        return rewards.sum(0).mean()

    return value


def real_episode_return(env, env_params, params, key, episodes=10):
    obs0, state0 = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, episodes),
                                                          env_params)

    def step(carry, _):
        obs, state = carry
        action = POLICY.apply(params, obs)
        obs, state, reward, *_ = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))(
            key, state, action, env_params)
        return (obs, state), reward

    _, rewards = jax.lax.scan(step, (obs0, state0), None, length=200)
    return rewards.sum(0).mean()


def fit_model(env, env_params, key, num_steps):
    key_data, key_init, key_fit = jax.random.split(key, 3)
    data = random_policy_transitions(env, env_params, key_data, num_steps)
    replay = buffer.add(buffer.init(jax.tree.map(lambda x: x[0], data), num_steps), data)
    config = MODEL
    model = dynamics.init(key_init, config, obs_dim=3, action_dim=1)
    model, info = jax.jit(dynamics.fit, static_argnums=3)(model, replay, key_fit, config)
    return model, info


def optimise(value, env, env_params, init_params, key, steps, horizon, starts=STARTS):
    """Adam on -J_H / H from fresh start states each step; returns the final parameters and
    the largest gradient norm met."""
    opt = optax.adam(1e-3)

    def body(carry, k):
        params, opt_state, worst = carry
        grads = jax.grad(lambda p: -value(p, start_states(env, env_params, k, starts))
                         / horizon)(params)
        norm = optax.global_norm(grads)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, jnp.maximum(worst, norm)), None

    (params, _, worst), _ = jax.lax.scan(body, (init_params, opt.init(init_params),
                                                jnp.zeros(())), jax.random.split(key, steps))
    return params, worst


def plot(results, out: str) -> None:
    """``grad_norm.png`` (gradient norm against H, band over seeds) and
    ``return_vs_horizon.png`` (real return of the optimised policy against H, band over seeds,
    MBPO's final return as a dashed line) from a ``results.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"true": "gymnax Pendulum", "model": "learned ensemble"}
    fig, ax = plt.subplots(figsize=(6, 4))
    horizons = sorted(int(h) for h in results["grad_norm"])
    for name, color in (("true", "C0"), ("model", "C1")):
        norms = np.array([results["grad_norm"][str(h)][name] for h in horizons])
        ax.plot(horizons, np.median(norms, 1), color=color, label=labels[name])
        ax.fill_between(horizons, norms.min(1), norms.max(1), color=color, alpha=0.2)
    ax.set(xscale="log", yscale="log", xlabel="horizon H",
           ylabel="||dJ_H / dtheta||", title="Backprop through H model steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "grad_norm.png"), dpi=120)

    horizons = sorted(int(h) for h in results["optimised_return"])
    if not horizons:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, color in (("true", "C0"), ("model", "C1")):
        returns = np.array([results["optimised_return"][str(h)][name]["return"]
                            for h in horizons])
        ax.plot(horizons, np.median(returns, 1), "o-", color=color,
                label=f"backprop through {labels[name]}")
        ax.fill_between(horizons, returns.min(1), returns.max(1), color=color, alpha=0.2)
    if "mbpo_final_return" in results:
        ax.axhline(np.median(results["mbpo_final_return"]), color="C2", ls="--",
                   label="MBPO, 2000 env steps")
    ax.set(xscale="log", xlabel="horizon H", ylabel="real return (median, min-max over seeds)",
           title="Policy optimised by backprop through H steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "return_vs_horizon.png"), dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--opt-steps", type=int, default=1000)
    parser.add_argument("--opt-seeds", type=int, default=8)
    parser.add_argument("--opt-starts", type=int, default=16,
                        help="start states per optimisation step")
    parser.add_argument("--opt-horizons", default=",".join(map(str, OPT_HORIZONS)))
    parser.add_argument("--model-steps", type=int, default=10_000)
    parser.add_argument("--mbpo-seeds", type=int, default=8)
    parser.add_argument("--out", default="runs/backprop_through_model")
    parser.add_argument("--replot", default=None, metavar="RESULTS_JSON",
                        help="only redraw the two figures from a results.json into --out")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.replot:
        with open(args.replot) as f:
            plot(json.load(f), args.out)
        print(f"wrote {args.out}/grad_norm.png and return_vs_horizon.png")
        return 0
    print(f"machine: {machine()}")
    env, env_params = gymnax.make("Pendulum-v1")
    key = jax.random.key(0)
    key_model, key_policy, key_starts, key_opt, key_eval, key_mbpo = jax.random.split(key, 6)

    t0 = time.perf_counter()
    model, fit = fit_model(env, env_params, key_model, args.model_steps)
    jax.block_until_ready(model)
    print(f"model: 7 x 4 x 200 fitted on {args.model_steps} random transitions in "
          f"{time.perf_counter() - t0:.1f} s ({int(fit['epochs'])} epochs, elite holdout MSE "
          f"{float(fit['val_mse'][fit['elites']].mean()):.2e})")

    inits = jax.vmap(lambda k: POLICY.init(k, jnp.zeros((1, 3))))(
        jax.random.split(key_policy, args.seeds))
    starts = start_states(env, env_params, key_starts)
    results = {"machine": machine(), "grad_norm": {}, "optimised_return": {}}

    # 1. gradient norms
    print("\n||dJ_H/dtheta|| over policy initialisations: median [min, max] over "
          f"{args.seeds} seeds")
    print(f"{'H':>4} | {'true dynamics (gymnax)':>34} | {'learned model':>34}")
    for horizon in HORIZONS:
        row = {}
        for name, value in (("true", true_return(env, env_params, horizon)),
                            ("model", model_return(model, horizon))):
            grad = jax.jit(jax.vmap(jax.grad(value), in_axes=(0, None)))(inits, starts)
            norms = np.asarray(jax.vmap(optax.global_norm)(grad))
            row[name] = norms.tolist()
        results["grad_norm"][horizon] = row
        fmt = lambda v: (f"{np.median(v):10.3g} [{np.min(v):9.3g}, {np.max(v):9.3g}]")
        print(f"{horizon:>4} | {fmt(row['true']):>34} | {fmt(row['model']):>34}")
    print("\nper unit of horizon, ||d(J_H / H)/dtheta|| (the gradient Adam sees), median over "
          "seeds; and the spread over seeds (max / min):")
    for name in ("true", "model"):
        norms = np.array([results["grad_norm"][h][name] for h in HORIZONS])  # [H, seeds]
        per_step = np.median(norms, 1) / np.array(HORIZONS)
        spread = norms.max(1) / norms.min(1)
        print(f"  {name:>5}: " + ", ".join(f"H={h}: {v:.3g} ({sp:.1f}x)" for h, v, sp in
                                         zip(HORIZONS, per_step, spread, strict=True)))

    # 2. optimisation by backprop through H steps
    print(f"\npolicy optimised by backprop through H steps ({args.opt_steps} Adam steps, "
          f"{args.opt_starts} starts each), return on the real env: median [min, max] over "
          f"{args.opt_seeds} seeds")
    print(f"{'H':>4} | {'through true dynamics':>30} | {'through the learned model':>30} | "
          "largest grad norm met (true / model)")
    for horizon in (int(h) for h in args.opt_horizons.split(",")):
        row = {}
        for name, value in (("true", true_return(env, env_params, horizon)),
                            ("model", model_return(model, horizon))):
            run = jax.jit(jax.vmap(lambda p, k, v=value, h=horizon: optimise(
                v, env, env_params, p, k, args.opt_steps, h, args.opt_starts)))
            params, worst = run(jax.tree.map(lambda x: x[:args.opt_seeds], inits),
                                jax.random.split(key_opt, args.opt_seeds))
            returns = jax.vmap(real_episode_return, in_axes=(None, None, 0, None))(
                env, env_params, params, key_eval)
            row[name] = {"return": np.asarray(returns).tolist(),
                         "max_grad_norm": np.asarray(worst).tolist()}
        results["optimised_return"][horizon] = row
        fmt = lambda v: f"{np.median(v):8.0f} [{np.min(v):6.0f}, {np.max(v):6.0f}]"
        print(f"{horizon:>4} | {fmt(row['true']['return']):>30} | "
              f"{fmt(row['model']['return']):>30} | "
              f"{np.median(row['true']['max_grad_norm']):.3g} / "
              f"{np.median(row['model']['max_grad_norm']):.3g}")

    # 3. MBPO on the same task
    if args.mbpo_seeds:
        t0 = time.perf_counter()
        config = mbpo.Config.for_env(env="Pendulum-v1", total_steps=2000)
        _, metrics = jax.jit(jax.vmap(mbpo.make_train(config)))(
            jax.random.split(key_mbpo, args.mbpo_seeds))
        final = np.asarray(metrics["eval_return"])[:, -1]
        results["mbpo_final_return"] = final.tolist()
        print(f"\nMBPO preset, 2000 env steps, {args.mbpo_seeds} seeds: final return median "
              f"{np.median(final):.0f} [{final.min():.0f}, {final.max():.0f}] "
              f"({time.perf_counter() - t0:.0f} s)")

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(json.loads(json.dumps(results)), args.out)  # the keys as results.json has them
    print(f"\nwrote {args.out}/results.json, grad_norm.png and return_vs_horizon.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
