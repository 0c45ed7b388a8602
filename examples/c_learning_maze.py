"""Goal reaching by C-learning (Eysenbach et al. 2021) on a 2-D point maze.

    python examples/c_learning_maze.py [--env PointMaze-UMaze] [--seeds 4] [--steps 6000]

C-learning learns a classifier C(s, a, g) of "g is a future state of (s, a)" against "g is a
random state"; C / (1 - C) estimates the discounted density of reaching g, and the actor climbs
it. The script trains the seeds in one compile, prints the success rate at each evaluation,
then rolls out one trained policy from a start to a goal you can change.
About 2 minutes on a 2-core CPU at the defaults.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from purembrl import envs
from purembrl.algos import c_learning


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="PointMaze-UMaze", choices=c_learning.ENVS[:3])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6000)
    args = parser.parse_args()
    config = c_learning.Config.for_env(env=args.env, total_steps=args.steps, eval_every=1000)
    state, metrics = jax.jit(jax.vmap(c_learning.make_train(config)))(
        jax.random.split(jax.random.key(0), args.seeds))
    print("success rate (median over seeds):",
          np.median(np.asarray(metrics["success_rate"]), axis=0).round(2))

    # One trained policy, rolled out in the maze from its reset state to the sampled goal.
    policy = c_learning.policy(jax.tree.map(lambda x: x[0], state), config)
    env, params = envs.make(args.env)
    obs, env_state = env.reset(jax.random.key(1), params)
    print(f"start {jnp.round(obs[:2], 2)}, goal {jnp.round(obs[2:], 2)}")
    for t in range(200):
        action = policy(jax.random.key(t), obs[None])[0]
        obs, env_state, reward, terminated, truncated, info = env.step(
            jax.random.key(t), env_state, action, params)
        if bool(reward > 0) or bool(terminated | truncated):
            break
    print(f"seed 0's policy: {'reached the goal' if bool(reward > 0) else 'did not reach it'} "
          f"after {t + 1} steps; distance left {float(info['distance']):.2f}")


if __name__ == "__main__":
    main()
