"""Rollout length ablation: short branches vs full model trajectories (MBPO).

    python benchmarks/rollout_ablation.py [--env Pendulum-v1] [--seeds 4] [--steps 2000]
        [--lengths 1,5,15,200]

MBPO's preset for the env with a fixed rollout length k (``rollout_schedule=(1, 1, k, k)``),
for example k in {1, 5, 15, 200 = a full episode} on Pendulum-v1, or {1, 5, 15, 1000} on
``gymnasium:InvertedPendulum-v5`` (MuJoCo through the host path; a task with terminations,
where the notes expect long rollouts to hurt). The number of model transitions per rollout
batch is held at the preset's (400 rollouts per step x k = 1), i.e. ``rollouts_per_step =
max(1, 400 // k)``, so every k feeds the learner about the same amount of model data and only
its source differs: few long branches or many short ones (with a known termination a branch
that falls stops early, so long branches give fewer transitions than that). Reported per k: the
median evaluation return over seeds at a few budgets and at the end, and the error of the model
buffer at the end, measured against the env's true dynamics applied to each stored (obs,
action): RMSE of next obs and of reward over a sample of model transitions.
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

from common import machine  # noqa: E402

from purembrl import buffer  # noqa: E402
from purembrl.algos import mbpo  # noqa: E402
from purembrl.envs import known  # noqa: E402


def true_next(obs, action):
    """Pendulum's next observation from an observation (theta from cos/sin) and an action."""
    env, params = gymnax.make("Pendulum-v1")
    from gymnax.environments.classic_control.pendulum import EnvState

    def one(o, a):
        state = EnvState(theta=jnp.arctan2(o[1], o[0]), theta_dot=o[2], last_u=jnp.zeros(()),
                         time=0)
        next_obs, *_ = env.step_env(jax.random.key(0), state, a, params)
        return next_obs

    return jax.vmap(one)(obs, action)


def inverted_pendulum_truth(obs, action):
    """MuJoCo InvertedPendulum-v5's next observation and reward from each (obs, action): the
    observation is the whole state (qpos, qvel), so the simulator is set to it and stepped."""
    import gymnasium

    env = gymnasium.make("InvertedPendulum-v5").unwrapped
    env.reset(seed=0)
    obs, action = np.asarray(obs, np.float64), np.asarray(action, np.float64)
    next_obs, reward = np.zeros_like(obs), np.zeros(obs.shape[0])
    for i in range(obs.shape[0]):
        env.set_state(obs[i, :2], obs[i, 2:])
        next_obs[i], reward[i], *_ = env.step(action[i].reshape(1))
    env.close()
    return next_obs, reward


def buffer_error(env_name, model_buffer, key, samples=20_000):
    if env_name == "Pendulum-v1":
        batch = buffer.sample(model_buffer, key, samples)
        truth = true_next(batch.obs, batch.action)
        reward = known.pendulum_reward(batch.obs, batch.action, truth)
    else:  # the simulator steps one transition at a time: fewer samples
        batch = buffer.sample(model_buffer, key, min(samples, 2000))
        truth, reward = inverted_pendulum_truth(batch.obs, batch.action)
    obs_rmse = jnp.sqrt(jnp.mean((batch.next_obs - truth) ** 2))
    reward_rmse = jnp.sqrt(jnp.mean((batch.reward - reward) ** 2))
    return float(obs_rmse), float(reward_rmse)


ENVS = ("Pendulum-v1", "gymnasium:InvertedPendulum-v5")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1", choices=ENVS)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lengths", default="1,5,15,200")
    parser.add_argument("--budgets", default="",
                        help="env steps at which to print the median return (comma-separated)")
    args = parser.parse_args(argv)
    lengths = [int(k) for k in args.lengths.split(",")]
    budgets = [int(b) for b in args.budgets.split(",") if b]

    print(f"machine: {machine()}", flush=True)
    print(f"{args.env} MBPO preset, {args.steps} env steps, {args.seeds} seeds; model "
          "transitions per rollout batch held constant")
    at = "".join(f" {f'at {b}':>8}" for b in budgets)
    print(f"{'k':>5} {'rollouts/step':>14}{at} {'final return (median [IQR])':>30} "
          f"{'buffer obs RMSE':>16} {'buffer reward RMSE':>19} {'seconds':>8}", flush=True)
    for k in lengths:
        per_step = max(1, 400 // k)
        config = mbpo.Config.for_env(env=args.env, total_steps=args.steps,
                                     rollout_schedule=(1, 1, k, k), rollouts_per_step=per_step)
        keys = jax.random.split(jax.random.key(0), args.seeds)
        start = time.perf_counter()
        states, metrics = jax.jit(jax.vmap(mbpo.make_train(config)))(keys)
        returns = np.asarray(metrics["eval_return"])
        steps = np.asarray(metrics["env_steps"])[0]
        final = returns[:, -1]
        seconds = time.perf_counter() - start
        errors = [buffer_error(args.env, jax.tree.map(lambda x, i=i: x[i], states.model_buffer),
                               jax.random.key(i)) for i in range(args.seeds)]
        obs_err, rew_err = np.median(np.array(errors), axis=0)
        q25, med, q75 = np.percentile(final, [25, 50, 75])
        median = np.median(returns, axis=0)
        seen = [np.nonzero(steps <= b)[0] for b in budgets]  # evaluations at or before each
        cells = "".join(f" {median[i[-1]]:>8.0f}" if i.size else f" {'-':>8}" for i in seen)
        print(f"{k:>5} {per_step:>14}{cells} {f'{med:.0f} [{q25:.0f}, {q75:.0f}]':>30} "
              f"{obs_err:>16.4f} {rew_err:>19.4f} {seconds:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
