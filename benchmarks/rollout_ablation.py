"""Rollout length ablation: short branches vs full model trajectories (MBPO on Pendulum-v1).

    python benchmarks/rollout_ablation.py [--seeds 4] [--steps 2000] [--lengths 1,5,15,200]

MBPO's Pendulum preset with a fixed rollout length k (``rollout_schedule=(1, 1, k, k)``) for
k in {1, 5, 15, 200 = a full episode}. The number of model transitions per rollout batch is held
at the preset's (400 rollouts per step x k = 1), i.e. ``rollouts_per_step = 400 / k``, so every
k feeds the learner the same amount of model data and only its source differs: few long
branches or many short ones. Reported per k: the final evaluation return (median over seeds)
and the error of the model buffer at the end, measured against Pendulum's true dynamics applied
to each stored (obs, action): RMSE of next obs and of reward over a sample of model transitions,
split by the step within the branch where possible.
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


def buffer_error(model_buffer, key, samples=20_000):
    batch = buffer.sample(model_buffer, key, samples)
    truth = true_next(batch.obs, batch.action)
    obs_rmse = jnp.sqrt(jnp.mean((batch.next_obs - truth) ** 2))
    reward = known.pendulum_reward(batch.obs, batch.action, truth)
    reward_rmse = jnp.sqrt(jnp.mean((batch.reward - reward) ** 2))
    return float(obs_rmse), float(reward_rmse)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lengths", default="1,5,15,200")
    args = parser.parse_args(argv)
    lengths = [int(k) for k in args.lengths.split(",")]

    print(f"machine: {machine()}")
    print(f"Pendulum-v1 MBPO preset, {args.steps} env steps, {args.seeds} seeds; model "
          "transitions per rollout batch held constant")
    print(f"{'k':>5} {'rollouts/step':>14} {'final return (median [IQR])':>30} "
          f"{'buffer obs RMSE':>16} {'buffer reward RMSE':>19} {'seconds':>8}")
    for k in lengths:
        per_step = max(1, 400 // k)
        config = mbpo.Config.for_env(env="Pendulum-v1", total_steps=args.steps,
                                     rollout_schedule=(1, 1, k, k), rollouts_per_step=per_step)
        keys = jax.random.split(jax.random.key(0), args.seeds)
        start = time.perf_counter()
        states, metrics = jax.jit(jax.vmap(mbpo.make_train(config)))(keys)
        final = np.asarray(metrics["eval_return"])[:, -1]
        seconds = time.perf_counter() - start
        errors = [buffer_error(jax.tree.map(lambda x, i=i: x[i], states.model_buffer),
                               jax.random.key(i)) for i in range(args.seeds)]
        obs_err, rew_err = np.median(np.array(errors), axis=0)
        q25, med, q75 = np.percentile(final, [25, 50, 75])
        print(f"{k:>5} {per_step:>14} {f'{med:.0f} [{q25:.0f}, {q75:.0f}]':>30} "
              f"{obs_err:>16.4f} {rew_err:>19.4f} {seconds:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
