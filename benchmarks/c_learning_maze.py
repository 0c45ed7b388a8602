"""Goal reaching on the point mazes: C-learning vs contrastive RL vs goal-conditioned SAC + HER.

    python benchmarks/c_learning_maze.py [--seeds 8] [--steps 11000] [--envs ...]
                                         [--methods td infonce nce her] [--out DIR]

``purembrl.algos.c_learning`` with ``critic="td"`` (C-learning), ``"infonce"`` and ``"nce"``
(contrastive RL, softmax and binary NCE losses) and ``"her"`` (the baseline: the same actor
and networks, Q-learning on the hindsight success reward), the same budget and relabelling
settings, 8 seeds under one ``jit(vmap(train))`` per method and env. Printed: success rate
(median [IQR] over seeds) at a few budgets, final distance to the goal at the end, and
throughput in env steps per second (updates included, compile excluded). The plot (success
rate vs env steps, one panel per env) goes to ``--out``.
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

from purembrl.algos import c_learning  # noqa: E402

METHODS = {"td": "C-learning", "infonce": "contrastive (InfoNCE)",
           "nce": "contrastive (NCE)", "her": "GC-SAC + HER"}


def fmt(x):
    return f"{np.median(x):.2f} [{np.percentile(x, 25):.2f}, {np.percentile(x, 75):.2f}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=11_000)
    parser.add_argument("--envs", nargs="+", default=["PointMaze-Open", "PointMaze-UMaze",
                                                       "PointMaze-FourRooms", "FourRooms-goal"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", default="benchmarks/out/c_learning_maze")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"{args.seeds} seeds, {args.steps} env steps (1000 random first), evaluation every "
          f"1000 steps on 20 fresh goals")
    results = {}
    for env in args.envs:
        for critic in args.methods:
            cfg = c_learning.Config.for_env(env=env, critic=critic, total_steps=args.steps,
                                            eval_every=1000)
            train = jax.jit(jax.vmap(c_learning.make_train(cfg)))
            keys = jax.random.split(jax.random.key(0), args.seeds)
            start = time.perf_counter()
            compiled = train.lower(keys).compile()
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            _, metrics = compiled(keys)
            metrics = jax.device_get(metrics)
            seconds = time.perf_counter() - start
            results[env, critic] = (metrics, seconds, compile_s)

    budgets = [2000, 5000, args.steps]
    print(f"\n{'env':>20} {'method':>16} " + " ".join(f"{'success @ ' + str(b):>20}"
                                                   for b in budgets)
          + f" {'final distance':>20} {'env steps/s':>12} {'compile s':>10}")
    for (env, critic), (m, seconds, compile_s) in results.items():
        steps = np.asarray(m["env_steps"][0])
        cols = []
        for b in budgets:
            i = int(np.argmin(np.abs(steps - b)))
            cols.append(f"{fmt(m['success_rate'][:, i]):>20}")
        rate = args.seeds * (args.steps - cfg.initial_random_steps) / seconds
        print(f"{env:>20} {METHODS[critic]:>16} " + " ".join(cols)
              + f" {fmt(m['final_distance'][:, -1]):>20} {rate:12.0f} {compile_s:10.1f}")

    os.makedirs(args.out, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.envs), figsize=(4 * len(args.envs), 3.4), squeeze=False)
    for ax, env in zip(axes[0], args.envs, strict=True):
        for critic in args.methods:
            label, m = METHODS[critic], results[env, critic][0]
            x, y = np.asarray(m["env_steps"][0]), np.asarray(m["success_rate"])
            ax.plot(x, np.median(y, 0), label=label)
            ax.fill_between(x, np.percentile(y, 25, 0), np.percentile(y, 75, 0), alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("success rate")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "c_learning_maze.png"), dpi=110)
    print(f"wrote {args.out}/c_learning_maze.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
