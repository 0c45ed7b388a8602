"""MBPO vs SAC on Pendulum-v1, 8 seeds each, measured side by side in one run.

    python benchmarks/mbpo_pendulum.py [--seeds 8] [--mbpo-steps 3000] [--sac-steps 10000]
                                       [--no-ablation] [--out DIR]

* MBPO: ``mbpo.Config.for_env(env="Pendulum-v1")`` (the preset: G = 20, real ratio 0.5, 7 x 4 x 200
  ensemble fitted in minibatches of 32, 400 rollouts of length 1 after every real step).
* SAC: ``sac.Config.for_env(env="Pendulum-v1")`` (its preset: the same learner family, G = 1).
* Ablation "MBPO, model off": the MBPO preset with ``real_ratio=1.0`` (no model, no rollouts,
  still G = 20), to separate the model's contribution from the update-to-data ratio.

Prints the median (and interquartile range) of the evaluation return at fixed env-step budgets
and the env steps each seed needs to first reach -200 (median over seeds), the goal being MBPO
within 1500 steps and at least 2.5x fewer than SAC. MBPO is run to a smaller budget than SAC
because each MBPO step costs 20 learner updates (plus model work) on a 2-core CPU; budgets it
did not run show "-". Saves the curves to ``DIR/mbpo_pendulum.png``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    machine,
    plot_curves,
    print_budget_table,
    run,
    steps_shown,
    steps_to,
)

from purembrl.algos import mbpo, sac  # noqa: E402

THRESHOLD = -200.0
BUDGETS = (500, 1000, 1500, 2000, 3000, 5000, 10000)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mbpo-steps", type=int, default=3000)
    parser.add_argument("--sac-steps", type=int, default=10_000)
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--out", default="runs/mbpo_pendulum")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    runs = {}
    mbpo_config = mbpo.Config.for_env(env="Pendulum-v1", total_steps=args.mbpo_steps)
    runs["MBPO"] = run(mbpo, mbpo_config, args.seeds, args.seed)
    sac_config = sac.Config.for_env(env="Pendulum-v1", total_steps=args.sac_steps, eval_every=250)
    runs["SAC"] = run(sac, sac_config, args.seeds, args.seed)
    if not args.no_ablation:
        off = mbpo.Config.for_env(env="Pendulum-v1", total_steps=args.mbpo_steps, real_ratio=1.0)
        runs["MBPO, model off (G=20)"] = run(mbpo, off, args.seeds, args.seed)

    print(f"machine: {machine()}")
    print(f"Pendulum-v1, {args.seeds} seeds; median [IQR] evaluation return (10 episodes)")
    print_budget_table(runs, BUDGETS, 24, 22)

    print(f"\nenv steps to first reach {THRESHOLD:.0f} (per seed; median)")
    medians = {}
    for name, (metrics, seconds) in runs.items():
        per_seed = steps_to(metrics, THRESHOLD)
        medians[name] = float(np.median(per_seed))
        print(f"  {name:<24} median {medians[name]:>7.0f}   [{steps_shown(per_seed)}]   "
              f"({seconds:.0f} s for all seeds, compile included)")
    ratio = medians["SAC"] / medians["MBPO"]
    ok_budget = medians["MBPO"] <= 1500
    ok_ratio = ratio >= 2.5
    print(f"  SAC / MBPO: {ratio:.2f}x fewer steps for MBPO")
    print(f"  [{'PASS' if ok_budget else 'FAIL'}] MBPO reaches {THRESHOLD:.0f} within 1500 steps")
    print(f"  [{'PASS' if ok_ratio else 'FAIL'}] MBPO needs >= 2.5x fewer steps than SAC")

    plot_curves(runs, os.path.join(args.out, "mbpo_pendulum.png"), THRESHOLD,
                "Pendulum-v1: MBPO vs SAC", f"eval return (median of {args.seeds} seeds)",
                log_x=True)
    print(f"\nplot saved to {args.out}/mbpo_pendulum.png")
    return 0 if ok_budget and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
