"""Sutton & Barto's Dyna experiments (Figures 8.2, 8.4, 8.5), and their cost vs a NumPy loop.

    python benchmarks/dyna_maze.py [--figure 8.2|8.4|8.5|all] [--out DIR] [--no-baseline]

Figure 8.2 exactly as the book sets it: Dyna maze, alpha 0.1, gamma 0.95, epsilon 0.1, 30 runs,
50 episodes, n in {0, 5, 50}. Prints mean steps per episode for episodes 2..10 and 50, next to
the same experiment written as a plain NumPy loop (benchmarks/numpy_dyna_q.py, an independent
implementation), saves the figure, and checks the book's shape: "the nonplanning agent took about
25 episodes to reach (epsilon-)optimal performance, whereas the n = 5 agent took about five
episodes, and the n = 50 agent took only three episodes" (Section 8.2).

Timing: the whole jitted experiment (30 runs x 3 values of n, compile included: one compile,
since n is a pytree leaf) against the NumPy loop, in the same process; both times and the ratio
are printed. The compile-free time (a second call) is printed too.

The same experiment at scale, as a user types it (issue 24): ``python -m purembrl sweep dyna_q
--env DynaMaze --grid planning_steps=0,5,50 --seeds N --set num_episodes=50`` (``--sweep-seeds``
N, default 1000; 0 skips it), timed from the command's start to its end in a subprocess (Python's
start, imports, compile, the run and the files it writes), beside the NumPy loop's 30 runs, and
its mean steps per episode beside the in-process runs'. Goal: 1000 runs per n in less wall time
than the NumPy loop takes for 30 (at least 33x per run).

Figures 8.4 (blocking maze, 3000 steps, change at 1000) and 8.5 (shortcut maze, 6000 steps,
change at 3000): cumulative reward of Dyna-Q and Dyna-Q+. The book does not list every
hyperparameter of these two; we use alpha 1.0, gamma 0.95, epsilon 0.1, n = 10 and kappa 1e-4
(blocking) and n = 50 and kappa 1e-3 (shortcut), 30 runs each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy_dyna_q  # noqa: E402
from common import machine  # noqa: E402

from purembrl.algos import dyna_q  # noqa: E402

BOOK_EPISODES_TO_OPTIMAL = {0: 25, 5: 5, 50: 3}  # Section 8.2, text under Figure 8.2


def episodes_to_optimal(mean_steps: np.ndarray, threshold: float = 20.0) -> int:
    """First episode (1-based) from which the mean over runs stays at or below ``threshold``
    steps (epsilon-greedy with epsilon 0.1 keeps the optimal 14 at about 16-17)."""
    above = np.nonzero(mean_steps > threshold)[0]
    return 1 if above.size == 0 else int(above[-1]) + 2


def figure_8_2(args) -> dict:
    ns, runs, episodes = (0, 5, 50), args.runs, 50
    keys = jax.random.split(jax.random.key(args.seed), runs)
    train = jax.jit(jax.vmap(lambda config, key: dyna_q.make_train(config)(key),
                             in_axes=(None, 0)))

    def experiment():
        out = {}
        for n in ns:
            _, metrics = train(dyna_q.Config.for_env(planning_steps=n, num_episodes=episodes), keys)
            out[n] = np.asarray(metrics["steps_per_episode"])
        return out

    start = time.perf_counter()
    ours = experiment()
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    experiment()
    t_warm = time.perf_counter() - start

    baseline, numpy_times = None, []

    def numpy_loop():
        nonlocal baseline
        if not args.no_baseline:
            start = time.perf_counter()
            baseline = numpy_dyna_q.figure_8_2(runs=runs, ns=ns, episodes=episodes,
                                               seed=args.seed)
            numpy_times.append(time.perf_counter() - start)

    # the NumPy loop and the sweep command take turns (``--repeat`` rounds, medians): this
    # machine's speed drifts by 10-15% within minutes, which one round each cannot separate
    sweep = (sweep_command(args.sweep_seeds, ns, args.repeat, before_each=numpy_loop)
             if args.sweep_seeds else None)
    if sweep is None:
        for _ in range(args.repeat):
            numpy_loop()
    t_numpy = float(np.median(numpy_times)) if numpy_times else None

    print(f"\nFigure 8.2: Dyna maze, {runs} runs, mean steps per episode")
    cols = list(range(2, 11)) + [50]
    print(f"{'n':>4} {'impl':>9} " + " ".join(f"{'ep' + str(e):>6}" for e in cols)
          + f" {'to optimal':>11} {'book':>5}")
    checks = []
    for n in ns:
        rows = [("purembrl", ours[n])] + ([("numpy", baseline[n])] if baseline else [])
        for name, steps in rows:
            mean = steps.mean(axis=0)
            reach = episodes_to_optimal(mean)
            print(f"{n:>4} {name:>9} " + " ".join(f"{mean[e - 1]:>6.1f}" for e in cols)
                  + f" {reach:>11} {BOOK_EPISODES_TO_OPTIMAL[n]:>5}")
            if name == "purembrl":
                checks.append((n, reach, mean))
    reach = {n: r for n, r, _ in checks}
    mean = {n: m for n, _, m in checks}
    verdicts = [
        ("n = 50 near the 14-step optimum within a few episodes (book: 3)", reach[50] <= 5),
        ("n = 5 within about five episodes (book: 5)", reach[5] <= 8),
        ("n = 0 far slower (book: about 25 episodes)", reach[0] >= 15),
        ("episode 2: n = 0 takes > 5x the steps of n = 50", mean[0][1] > 5 * mean[50][1]),
        ("all three end epsilon-optimal (mean <= 20 steps at episode 50)",
         all(m[-1] <= 20 for m in mean.values())),
    ]
    for text, ok in verdicts:
        print(f"  [{'PASS' if ok else 'FAIL'}] {text}")

    print(f"\ntiming on {machine()}")
    print(f"  purembrl, jit(vmap) over {runs} runs x {len(ns)} n, compile included: "
          f"{t_ours:.2f} s (without compile: {t_warm:.2f} s)")
    if t_numpy is not None:
        print(f"  NumPy loop, same experiment: {t_numpy:.2f} s (median of "
              f"{', '.join(f'{t:.2f}' for t in numpy_times)})")
        print(f"  speed-up: {t_numpy / t_ours:.1f}x with compile, {t_numpy / t_warm:.1f}x "
              f"without (goal: 30x with compile)")
    if sweep is not None:
        print(f"  the command `{sweep['command']}`: {sweep['seconds']:.2f} s for "
              f"{args.sweep_seeds} runs x {len(ns)} n, from start to end, compile cache empty "
              f"(median of {', '.join(f'{t:.2f}' for t in sweep['cold'])}; the same command "
              f"again, cache warm: {sweep['warm_seconds']:.2f} s)")
        if t_numpy is not None:
            per_run = (t_numpy / runs) / (sweep["seconds"] / args.sweep_seeds)
            print(f"  against the NumPy loop's {runs} runs: {t_numpy / sweep['seconds']:.2f}x "
                  f"the wall time for {args.sweep_seeds / runs:.0f}x the runs, {per_run:.0f}x "
                  f"per run (goal: less wall time, i.e. >= {args.sweep_seeds / runs:.0f}x per "
                  "run)")
        print("  mean steps per episode, the sweep's runs (episodes 1-5, 10, 50):")
        for n in ns:
            mean = sweep["steps"][n].mean(axis=0)
            print(f"    n = {n:>2}: " + " ".join(f"{mean[e - 1]:.1f}" for e in (1, 2, 3, 4, 5,
                                                                                10, 50)))
    if args.out:
        plot_8_2(os.path.join(args.out, "figure_8_2.png"), ours, baseline)
    return {"ours": ours, "numpy": baseline, "t_ours": t_ours, "t_warm": t_warm,
            "t_numpy": t_numpy, "ok": all(ok for _, ok in verdicts)}


def sweep_command(seeds: int, ns, repeat: int = 1, before_each=None) -> dict:
    """Figure 8.2 through ``python -m purembrl sweep``, timed from start to end, ``repeat``
    times with an empty compile cache (``before_each()`` called before each: the NumPy loop
    takes turns with it), then once more with the cache warm: the median and every cold
    time, the warm time, and the steps per episode of every run, ``{n: [seeds, 50]}``."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "purembrl", "sweep", "dyna_q", "--env", "DynaMaze",
                   "--grid", "planning_steps=" + ",".join(map(str, ns)), "--seeds", str(seeds),
                   "--set", "num_episodes=50", "--quiet", "--out", out, "--overwrite"]

        def timed(cache: str) -> float:
            env = {**os.environ, "PUREMBRL_CACHE_DIR": cache}
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
            return time.perf_counter() - start

        cold = []
        with tempfile.TemporaryDirectory() as cache:
            for i in range(repeat):
                if before_each is not None:
                    before_each()
                fresh = os.path.join(cache, str(i))  # a first run: nothing compiled yet
                cold.append(timed(fresh))
            warm = timed(fresh)  # the same command again, as a user repeating it
        with open(os.path.join(out, "sweep.json")) as f:
            data = json.load(f)
    steps = np.asarray(data["metrics"]["steps_per_episode"])  # [points, seeds, episodes]
    shown = " ".join(command[1:command.index("--quiet")])
    return {"seconds": float(np.median(cold)), "cold": cold, "warm_seconds": warm,
            "command": f"python {shown}", "steps": {n: steps[i] for i, n in enumerate(ns)}}


def changing_maze(env: str, num_steps: int, planning_steps: int, kappa: float, args) -> dict:
    keys = jax.random.split(jax.random.key(args.seed), args.runs)
    out = {}
    for plus in (False, True):
        config = dyna_q.Config.for_env(env=env, num_steps=num_steps, eval_every=10, alpha=1.0,
                                       planning_steps=planning_steps, plus=plus, kappa=kappa,
                                       eval_max_steps=100)
        _, metrics = jax.jit(jax.vmap(dyna_q.make_train(config)))(keys)
        out["Dyna-Q+" if plus else "Dyna-Q"] = jax.tree.map(np.asarray, metrics)
    return out


def report_changing(title: str, results: dict, change_at: int, num_steps: int,
                    short_before: int, short_after: int) -> bool:
    marks = [change_at // 2, change_at, (change_at + num_steps) // 2, num_steps]
    print(f"\n{title}: mean cumulative reward over {len(results['Dyna-Q']['env_steps'])} runs"
          f" (walls change at step {change_at})")
    print(f"{'method':>8} " + " ".join(f"{'t=' + str(t):>8}" for t in marks)
          + f" {'greedy path at end':>19}")
    final = {}
    for name, m in results.items():
        steps = m["env_steps"][0]
        cum = m["cumulative_reward"].mean(axis=0)
        values = [cum[np.searchsorted(steps, t)] for t in marks]
        path = np.median(m["eval_length"][:, -1])
        final[name] = (cum[-1] - cum[np.searchsorted(steps, change_at)], path)
        print(f"{name:>8} " + " ".join(f"{v:>8.1f}" for v in values) + f" {path:>19.0f}")
    gained = {k: v[0] for k, v in final.items()}
    print(f"  reward after the change: Dyna-Q {gained['Dyna-Q']:.1f}, "
          f"Dyna-Q+ {gained['Dyna-Q+']:.1f} (shortest path {short_before} -> {short_after})")
    ok = gained["Dyna-Q+"] > gained["Dyna-Q"]
    print(f"  [{'PASS' if ok else 'FAIL'}] Dyna-Q+ collects more reward after the change")
    return ok


def plot_8_2(path, ours, baseline):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    episodes = np.arange(2, 51)
    for n, steps in ours.items():
        line, = ax.plot(episodes, steps.mean(0)[1:], label=f"{n} planning steps")
        if baseline is not None:
            ax.plot(episodes, baseline[n].mean(0)[1:], "--", color=line.get_color(), alpha=0.6)
    ax.set_ylim(0, 800)
    ax.set_xlabel("episodes")
    ax.set_ylabel("steps per episode (mean of runs)")
    ax.set_title("Figure 8.2" + (" (dashed: NumPy loop)" if baseline is not None else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_changing(path, results, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in results.items():
        ax.plot(m["env_steps"][0], m["cumulative_reward"].mean(0), label=name)
    ax.set_xlabel("time steps")
    ax.set_ylabel("cumulative reward (mean of runs)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", choices=["8.2", "8.4", "8.5", "all"], default="all")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/dyna_maze")
    parser.add_argument("--no-baseline", action="store_true", help="skip the NumPy loop")
    parser.add_argument("--sweep-seeds", type=int, default=1000,
                        help="runs per n of Figure 8.2 through the sweep command (0: skip)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed rounds of the NumPy loop and the sweep command (medians)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ok = True
    if args.figure in ("8.2", "all"):
        ok &= figure_8_2(args)["ok"]
    if args.figure in ("8.4", "all"):
        results = changing_maze("BlockingMaze", 3000, 10, 1e-4, args)
        ok &= report_changing("Figure 8.4, blocking maze", results, 1000, 3000, 10, 16)
        plot_changing(os.path.join(args.out, "figure_8_4.png"), results, "Figure 8.4")
    if args.figure in ("8.5", "all"):
        results = changing_maze("ShortcutMaze", 6000, 50, 1e-3, args)
        ok &= report_changing("Figure 8.5, shortcut maze", results, 3000, 6000, 16, 10)
        plot_changing(os.path.join(args.out, "figure_8_5.png"), results, "Figure 8.5")
    print(f"\nfigures saved to {args.out}/")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
