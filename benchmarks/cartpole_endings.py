"""How do a trained DQN's CartPole episodes end: the pole falling or the cart leaving the track?

    python benchmarks/cartpole_endings.py [--algo dqn|mbpo_true] [--steps 10000] [--seeds 4]

Trains ``dqn.Config.for_env("CartPole-v1")`` (or MBPO-DQN with the true dynamics as its model)
for ``--steps`` env steps, ``--seeds`` seeds under one ``jit(vmap)``, then plays 10 greedy
episodes per seed and prints each episode's length and whether it ended with the cart off the
track (|x| > 2.4) or the pole down (|theta| > 12 degrees), with the learner's last mean Q on
its minibatches. Issue 20's diagnosis: the 10k-step learners balance the pole but let the cart
drift off the track about 100 steps in.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

from purembrl import envs  # noqa: E402
from purembrl.algos import dqn, mbpo  # noqa: E402

X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * np.pi / 360


def endings(policy, env, params, key, episodes: int = 10):
    """Per episode: its length (at most the env's 500 steps) and the observation it ended on."""
    def episode(key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            obs, state, alive, last, length = carry
            action = policy(k, obs[None])[0]
            obs, state, _, terminated, truncated, info = env.step(k, state, action, params)
            last = jnp.where(alive, info["final_observation"], last)
            return (obs, state, alive & ~(terminated | truncated), last, length + alive), None

        carry = (obs, state, jnp.bool_(True), obs, jnp.int32(0))
        keys = jax.random.split(key, params.max_steps_in_episode)
        (_, _, _, last, length), _ = jax.lax.scan(body, carry, keys)
        return length, last

    return jax.vmap(episode)(jax.random.split(key, episodes))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="dqn", choices=("dqn", "mbpo_true"))
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args(argv)
    module = dqn if args.algo == "dqn" else mbpo
    extra = {} if args.algo == "dqn" else {"true_dynamics": True}
    config = module.Config.for_env(env="CartPole-v1", total_steps=args.steps,
                                   eval_every=args.steps, **extra)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    state, metrics = jax.jit(jax.vmap(module.make_train(config)))(keys)
    env, params = envs.make("CartPole-v1")
    print(f"machine: {machine()}; {args.algo} on CartPole-v1, {args.steps} steps")
    for i in range(args.seeds):
        run = jax.tree.map(lambda x, i=i: x[i], state)
        length, last = endings(module.policy(run, config), env, params, jax.random.key(9))
        length, last = np.asarray(length), np.asarray(last)
        ended = length < params.max_steps_in_episode
        off_track = int((ended & (np.abs(last[:, 0]) > X_LIMIT)).sum())
        fallen = int((ended & (np.abs(last[:, 2]) > THETA_LIMIT)).sum())
        print(f"seed {i}: evaluation {float(metrics['eval_return'][i, -1]):.0f}, mean Q "
              f"{float(metrics['q_mean'][i, -1]):.1f}; lengths {length.tolist()}; cart off the "
              f"track {off_track}, pole down {fallen}, lasted 500: {int((~ended).sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
