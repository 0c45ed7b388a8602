"""How wrong is the learned model, one step and k steps ahead? (The case for short branches.)

    python benchmarks/model_error.py [--steps 10000] [--out DIR]

Fits the MBPO ensemble (7 x 4 x 200, 5 elites, paper defaults) on 10k Pendulum-v1 transitions
from a uniform random policy, reports each member's one-step holdout MSE and the elites, then
rolls the model open loop for k = 1..50 steps from 500 fresh start states under fixed random
action sequences and compares with gymnax's true dynamics: RMSE of the predicted observation at
each k, for the mean of a random elite per step (``deterministic``), for MBPO's sampled steps,
and for the trivial predictor "next obs = obs". Prints a table and saves a plot.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import gymnax
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, random_policy_transitions  # noqa: E402

from purembrl import buffer, dynamics  # noqa: E402

HORIZON, STARTS = 50, 500


MODEL = dynamics.EnsembleConfig()  # MBPO's defaults


def open_loop(env, env_params, model_state, key):
    """Observation RMSE at k = 1..HORIZON for the model (mean, sampled) and obs-held-constant."""
    key_reset, key_actions, key_model = jax.random.split(key, 3)
    obs0, state0 = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key_reset, STARTS), env_params)
    actions = jax.random.uniform(key_actions, (HORIZON, STARTS, 1), minval=-2.0, maxval=2.0)

    def true_step(state, action):
        obs, state, *_ = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))(
            key, state, action, env_params)  # Pendulum's dynamics are deterministic
        return state, obs

    _, true_obs = jax.lax.scan(true_step, state0, actions)

    def model_rollout(deterministic):
        def step(obs, inputs):
            action, k = inputs
            next_obs, _, _ = dynamics.sample_step(model_state, MODEL, k, obs, action,
                                                  deterministic=deterministic)
            return next_obs, next_obs

        keys = jax.random.split(key_model, HORIZON)
        return jax.lax.scan(step, obs0, (actions, keys))[1]

    rmse = lambda pred: jnp.sqrt(jnp.mean((pred - true_obs) ** 2, axis=(1, 2)))
    return {"model mean": rmse(model_rollout(True)), "model sampled": rmse(model_rollout(False)),
            "obs held": rmse(jnp.broadcast_to(obs0, true_obs.shape))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/model_error")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    env, env_params = gymnax.make("Pendulum-v1")
    key_data, key_init, key_fit, key_eval = jax.random.split(jax.random.key(args.seed), 4)
    data = jax.jit(random_policy_transitions, static_argnums=(0, 3))(
        env, env_params, key_data, args.steps)
    replay = buffer.add(buffer.init(jax.tree.map(lambda x: x[0], data), args.steps), data)

    config = MODEL
    state = dynamics.init(key_init, config, obs_dim=3, action_dim=1)
    start = time.perf_counter()
    state, info = jax.jit(dynamics.fit, static_argnums=3)(state, replay, key_fit, config)
    jax.block_until_ready(info)
    seconds = time.perf_counter() - start

    print(f"machine: {machine()}")
    print(f"fit on {args.steps} random-policy Pendulum-v1 transitions: {int(info['epochs'])} "
          f"epochs, {int(info['num_train'])} train / {int(info['num_holdout'])} holdout rows, "
          f"{seconds:.1f} s (compile included), nonfinite: {bool(info['nonfinite'])}")
    val = np.asarray(info["val_mse"])
    elites = set(np.asarray(info["elites"]).tolist())
    print("one-step holdout MSE per member (standardised [reward, delta obs]):")
    for m, v in enumerate(val):
        print(f"  member {m}: {v:.2e}{'  elite' if m in elites else ''}")

    errors = {k: np.asarray(v) for k, v in jax.jit(open_loop, static_argnums=(0,))(
        env, env_params, state, key_eval).items()}
    ks = [1, 2, 5, 10, 15, 20, 30, 40, 50]
    print(f"\nopen-loop observation RMSE vs the true dynamics ({STARTS} starts, random actions)")
    print(f"{'k':>4} " + " ".join(f"{name:>14}" for name in errors))
    for k in ks:
        print(f"{k:>4} " + " ".join(f"{errors[name][k - 1]:>14.4f}" for name in errors))
    ratio = errors["model mean"] / errors["obs held"]
    print(f"model / trivial error ratio: k=1 {ratio[0]:.3f}, k=5 {ratio[4]:.3f}, "
          f"k=15 {ratio[14]:.3f}, k=50 {ratio[49]:.3f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, err in errors.items():
        ax.plot(np.arange(1, HORIZON + 1), err, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("open-loop steps k")
    ax.set_ylabel("observation RMSE")
    ax.set_title("Pendulum-v1: compounding model error")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "model_error.png"), dpi=100)
    print(f"\nplot saved to {args.out}/model_error.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
