"""Is a change of Dyna-Q's random draws a change of its curves? Figure 8.2 two ways, compared.

Usage (one checkout per implementation, e.g. a ``git worktree`` of the old revision):
    PYTHONPATH=OLD python benchmarks/dyna_q_draws.py --runs 400 --seed 0 --save old.npz
    python benchmarks/dyna_q_draws.py --runs 400 --seed 1 --save new.npz --against old.npz

Runs Sutton & Barto's Figure 8.2 (DynaMaze, n = 0, 5, 50 planning steps, 50 episodes) for
``--runs`` runs per n under one ``jit(vmap)`` and saves each run's steps per episode. With
``--against`` it compares the two sets episode by episode: the difference of the means in units
of its standard error (independent runs: give the two sides different ``--seed``), how many
episodes fall beyond two standard errors (about 5% of them would by chance alone), and the
two mean curves. Issue 24's criterion for a change of draws: the curves within two standard
errors per episode.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from purembrl.algos import dyna_q

NS = (0, 5, 50)


def steps_per_episode(runs: int, seed: int, num_episodes: int) -> dict[int, np.ndarray]:
    """``{n: [runs, num_episodes]}`` steps per training episode."""
    keys = jax.random.split(jax.random.key(seed), runs)
    out = {}
    for n in NS:
        config = dyna_q.Config(planning_steps=n, num_episodes=num_episodes)
        _, metrics = jax.jit(jax.vmap(dyna_q.make_train(config)))(keys)
        out[n] = np.asarray(metrics["steps_per_episode"])
    return out


def compare(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> None:
    print("| n | episodes beyond 2 SE | largest abs(z) (episode) | mean steps, episodes 2-50, "
          "saved / this |")
    print("|---|---|---|---|")
    for n in NS:
        x, y = a[n].astype(float), b[n].astype(float)
        se = np.sqrt(x.var(axis=0, ddof=1) / len(x) + y.var(axis=0, ddof=1) / len(y))
        z = (y.mean(axis=0) - x.mean(axis=0)) / np.where(se > 0, se, np.inf)
        worst = int(np.argmax(np.abs(z)))
        print(f"| {n} | {int((np.abs(z) > 2).sum())} of {len(z)} | {abs(z[worst]):.2f} "
              f"({worst + 1}) | {x[:, 1:].mean():.2f} / {y[:, 1:].mean():.2f} |")
    for n in NS:
        print(f"n = {n}, mean steps per episode, saved: "
              f"{np.round(a[n].mean(axis=0), 1).tolist()}")
        print(f"n = {n}, mean steps per episode, this:  "
              f"{np.round(b[n].mean(axis=0), 1).tolist()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--save", required=True, help="where to write this side's .npz")
    parser.add_argument("--against", help="a saved side to compare with")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    ours = steps_per_episode(args.runs, args.seed, args.episodes)
    print(f"{args.runs} runs x {len(NS)} n from key {args.seed}: "
          f"{time.perf_counter() - start:.1f} s")
    np.savez(args.save, **{str(n): v for n, v in ours.items()})
    if args.against:
        saved = np.load(args.against)
        compare({n: saved[str(n)] for n in NS}, ours)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
