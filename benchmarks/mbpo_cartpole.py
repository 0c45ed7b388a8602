"""MBPO-DQN vs DQN on CartPole-v1: env steps to reach a return of 475, side by side.

    python benchmarks/mbpo_cartpole.py [--seeds 4] [--mbpo-steps 10500] [--dqn-steps 51000]

Both with their presets (``mbpo.Config.for_env(env="CartPole-v1")``: learned model, known
termination, G = 5, real ratio 0.1; ``dqn.Config.for_env(env="CartPole-v1")``), evaluated
every 500 env steps on 10 greedy episodes. Prints, per method, the median and IQR of the return
at fixed budgets and the env steps each seed needs to first reach 475 ("never" within its
budget).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, print_budget_table, run, steps_shown, steps_to  # noqa: E402

from purembrl.algos import dqn, mbpo  # noqa: E402

THRESHOLD = 475.0
BUDGETS = (1000, 2500, 5000, 10000, 25000, 50000)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mbpo-steps", type=int, default=10_500)
    parser.add_argument("--dqn-steps", type=int, default=51_000)
    args = parser.parse_args(argv)

    runs = {
        "MBPO-DQN": run(mbpo, mbpo.Config.for_env(env="CartPole-v1", total_steps=args.mbpo_steps,
                                                  eval_every=500), args.seeds, args.seed),
        "DQN": run(dqn, dqn.Config.for_env(env="CartPole-v1", total_steps=args.dqn_steps,
                                           eval_every=500), args.seeds, args.seed),
    }
    print(f"machine: {machine()}")
    print(f"CartPole-v1, {args.seeds} seeds; median [IQR] evaluation return (10 episodes)")
    print_budget_table(runs, BUDGETS, 10, 20)
    print(f"\nenv steps to first reach {THRESHOLD:.0f}")
    for name, (metrics, seconds) in runs.items():
        per_seed = steps_to(metrics, THRESHOLD)
        print(f"  {name:<10} median {np.median(per_seed):>8.0f}   [{steps_shown(per_seed)}]   "
              f"({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
