"""MBPO vs SAC on Pendulum-v1, 8 seeds each, measured side by side in one run.

    python benchmarks/mbpo_pendulum.py [--seeds 8] [--mbpo-steps 3000] [--sac-steps 10000]
                                       [--no-ablation] [--out DIR]

* MBPO: ``mbpo.Config(env="Pendulum-v1")`` (the preset: G = 20, real ratio 0.05, 7 x 4 x 200
  ensemble, 400 rollouts per step of length 1).
* SAC: ``sac.Config(env="Pendulum-v1")`` (its preset: the same learner family, G = 1).
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

from common import at_budget, machine, run, steps_to  # noqa: E402

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
    mbpo_config = mbpo.Config(env="Pendulum-v1", total_steps=args.mbpo_steps)
    runs["MBPO"] = run(mbpo, mbpo_config, args.seeds, args.seed)
    sac_config = sac.Config(env="Pendulum-v1", total_steps=args.sac_steps, eval_every=250)
    runs["SAC"] = run(sac, sac_config, args.seeds, args.seed)
    if not args.no_ablation:
        off = mbpo.Config(env="Pendulum-v1", total_steps=args.mbpo_steps, real_ratio=1.0)
        runs["MBPO, model off (G=20)"] = run(mbpo, off, args.seeds, args.seed)

    print(f"machine: {machine()}")
    print(f"Pendulum-v1, {args.seeds} seeds; median [IQR] evaluation return (10 episodes)")
    header = f"{'method':<24}" + "".join(f"{b:>22}" for b in BUDGETS)
    print(header)
    for name, (metrics, _) in runs.items():
        cells = []
        for b in BUDGETS:
            stat = at_budget(metrics, b)
            cells.append("-" if stat is None else f"{stat[0]:.0f} [{stat[1]:.0f}, {stat[2]:.0f}]")
        print(f"{name:<24}" + "".join(f"{c:>22}" for c in cells))

    print(f"\nenv steps to first reach {THRESHOLD:.0f} (per seed; median)")
    medians = {}
    for name, (metrics, seconds) in runs.items():
        per_seed = steps_to(metrics, THRESHOLD)
        medians[name] = float(np.median(per_seed))
        shown = ", ".join("never" if np.isinf(v) else f"{v:.0f}" for v in per_seed)
        print(f"  {name:<24} median {medians[name]:>7.0f}   [{shown}]   "
              f"({seconds:.0f} s for all seeds, compile included)")
    ratio = medians["SAC"] / medians["MBPO"]
    ok_budget = medians["MBPO"] <= 1500
    ok_ratio = ratio >= 2.5
    print(f"  SAC / MBPO: {ratio:.2f}x fewer steps for MBPO")
    print(f"  [{'PASS' if ok_budget else 'FAIL'}] MBPO reaches {THRESHOLD:.0f} within 1500 steps")
    print(f"  [{'PASS' if ok_ratio else 'FAIL'}] MBPO needs >= 2.5x fewer steps than SAC")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (metrics, _) in runs.items():
        x = metrics["env_steps"][0]
        q25, med, q75 = np.percentile(metrics["eval_return"], [25, 50, 75], axis=0)
        ax.plot(x, med, label=name)
        ax.fill_between(x, q25, q75, alpha=0.2)
    ax.axhline(THRESHOLD, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"eval return (median of {args.seeds} seeds)")
    ax.set_title("Pendulum-v1: MBPO vs SAC")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "mbpo_pendulum.png"), dpi=100)
    print(f"\nplot saved to {args.out}/mbpo_pendulum.png")
    return 0 if ok_budget and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
