"""The ways to use a model in a model-free learner, side by side at the same env-step budget.

    python benchmarks/model_based_zoo.py [--env Pendulum-v1] [--seeds 8] [--steps 3000]
                                         [--methods SAC,MBPO,...] [--out DIR]

Pendulum-v1 (continuous): SAC (no model), MBPO (branched rollouts into SAC's replay), deep Dyna
(SAC on expected targets over K = 5 model samples of s'), MBVE (SAC with H-step value-expansion
targets), MBA (NAF with imagination rollouts) and NAF alone. CartPole-v1 (discrete): DQN,
MBPO-DQN and deep Dyna-DQN (MBVE and MBA are continuous-action methods here).

Every method runs its preset (``Config.for_env(env)``) with the same ``total_steps``, 250 random
warm-up steps and an evaluation every 250 env steps on Pendulum (500 and 500 on CartPole);
each method's seeds run in one ``jit(vmap(train))``, one method after the other in the same
process. Prints the median [IQR] return at fixed budgets, the env steps each seed needs to first
reach the threshold (-200 on Pendulum, 475 on CartPole) and the wall-clock of each method's
seeds (compile included); saves ``zoo.png`` (median with IQR bands) and ``zoo.json`` (every
curve) to ``--out``, the JSON after each method so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
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

from purembrl.algos import dqn, dyna, mba, mbpo, mbve, sac  # noqa: E402

SETTINGS = {
    "Pendulum-v1": dict(threshold=-200.0, eval_every=250, warmup=250,
                        budgets=(500, 1000, 1500, 2000, 3000, 5000)),
    "CartPole-v1": dict(threshold=475.0, eval_every=500, warmup=500,
                        budgets=(1000, 2500, 5000, 10_000, 20_000)),
}


def methods(env: str, steps: int):
    """name -> (module, config) at a common budget, warm-up and evaluation period."""
    s = SETTINGS[env]
    common = dict(env=env, total_steps=steps, eval_every=s["eval_every"])
    warm = dict(initial_random_steps=s["warmup"])
    if env == "Pendulum-v1":
        return {
            "SAC": (sac, sac.Config.for_env(**common, **warm)),
            "MBPO": (mbpo, mbpo.Config.for_env(**common, **warm)),
            "deep Dyna": (dyna, dyna.Config.for_env(**common, **warm)),
            "MBVE": (mbve, mbve.Config.for_env(**common, **warm)),
            "MBA": (mba, mba.Config.for_env(**common, **warm)),
            "NAF": (mba, mba.Config.for_env(**common, **warm, imagination_updates=0)),
        }
    return {
        "DQN": (dqn, dqn.Config.for_env(**common, **warm)),
        "MBPO-DQN": (mbpo, mbpo.Config.for_env(**common, **warm)),
        "deep Dyna-DQN": (dyna, dyna.Config.for_env(**common, **warm)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1", choices=tuple(SETTINGS))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--methods", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--out", default="runs/model_based_zoo")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    settings = SETTINGS[args.env]
    table = methods(args.env, args.steps)
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",")]
        unknown = [m for m in wanted if m not in table]
        if unknown:
            parser.error(f"unknown methods {unknown}; known: {', '.join(table)}")
        table = {m: table[m] for m in wanted}

    print(f"machine: {machine()}")
    results, runs = {"machine": machine(), "env": args.env, "seeds": args.seeds}, {}
    for name, (module, config) in table.items():
        metrics, seconds = run(module, config, args.seeds, args.seed)
        runs[name] = (metrics, seconds)
        results[name] = {"env_steps": metrics["env_steps"][0].tolist(),
                         "eval_return": metrics["eval_return"].tolist(), "seconds": seconds}
        with open(os.path.join(args.out, "zoo.json"), "w") as f:
            json.dump(results, f)
        print(f"  {name}: done in {seconds:.0f} s", flush=True)

    threshold = settings["threshold"]
    print(f"\n{args.env}, {args.seeds} seeds, {args.steps} env steps; median [IQR] evaluation "
          "return (10 episodes)")
    print_budget_table(runs, settings["budgets"], 16, 22)
    print(f"\nenv steps to first reach {threshold:.0f} (median; per seed) and wall-clock")
    for name, (metrics, seconds) in runs.items():
        per_seed = steps_to(metrics, threshold)
        print(f"  {name:<16} median {np.median(per_seed):>7.0f}   [{steps_shown(per_seed)}]   "
              f"{seconds:.0f} s "
              f"for {args.seeds} seeds ({seconds / args.seeds:.0f} s per run), compile included")

    plot_curves(runs, os.path.join(args.out, "zoo.png"), threshold,
                f"{args.env}: model-based learners at the same budget",
                f"eval return (median, IQR over {args.seeds} seeds)", figsize=(7, 4.5),
                alpha=0.15)
    print(f"\nwrote {args.out}/zoo.json and zoo.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
