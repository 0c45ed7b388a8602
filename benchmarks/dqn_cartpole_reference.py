"""Is our DQN right? CartPole-v1 at purejaxrl's DQN settings and budget.

    python benchmarks/dqn_cartpole_reference.py [--seeds 4] [--steps 510000]

purejaxrl's DQN for CartPole (its ``dqn.py`` config): Adam 2.5e-4, replay 10k, batch 128, one
update every 10 env steps, target copied every 500 env steps (50 updates), MSE loss, plain
(not double) Q targets, epsilon 1 -> 0.05 over 250k steps after 10k random steps, 120 x 84 ReLU
network, about 500k steps. Reaching 500 and staying there at this budget separates "our DQN is
wrong" from "our short-budget preset is unstable". Prints the evaluation return of every seed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

from purembrl.algos import dqn  # noqa: E402
from purembrl.learners import DQNConfig  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=510_000)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    cfg = dqn.Config.for_env(env="CartPole-v1", total_steps=args.steps, eval_every=25_000,
                             initial_random_steps=10_000, buffer_size=10_000, batch_size=128,
                             updates_per_step=1, train_every=10,
                             learner=DQNConfig(hidden_sizes=(120, 84), target_update="periodic",
                                               eps_decay_steps=250_000, target_period=50,
                                               learning_rate=2.5e-4, loss="mse",
                                               double_q=False, max_grad_norm=1e9))
    train = jax.jit(jax.vmap(dqn.make_train(cfg)))
    keys = jax.random.split(jax.random.key(0), args.seeds)
    compiled = train.lower(keys).compile()
    start = time.perf_counter()
    _, metrics = compiled(keys)
    returns = np.asarray(jax.device_get(metrics["eval_return"]))
    seconds = time.perf_counter() - start
    steps = np.asarray(metrics["env_steps"][0])
    print(f"{args.seeds} seeds x {args.steps} env steps in {seconds:.1f} s (compile excluded)")
    print("env steps: " + " ".join(f"{s // 1000}k" for s in steps))
    for i, r in enumerate(returns):
        first = steps[np.argmax(r >= 475)] if (r >= 475).any() else None
        held = next((int(steps[j]) for j in range(len(r)) if (r[j:] >= 475).all()), None)
        print(f"seed {i}: " + " ".join(f"{x:.0f}" for x in r)
              + f" | first >= 475 at {first}, >= 475 from then on at {held}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
