"""What the progress display and the loggers cost a run: the same run with nothing shown,
with plain progress lines, with the terminal progress bar (rich) and with TensorBoard logging,
timed alternately in one process.

    python benchmarks/progress_cost.py [--repeats 3] [--chunks 20]

A 4-seed SAC run on Pendulum-v1 (2,000 env steps, one update per step), compiled once
beforehand (every variant then runs the same compiled chunks); each variant is timed
``--repeats`` times, interleaved (A B C D A B C D ...) so that a slow stretch of the machine
falls on every variant alike, and the median seconds and the ratio to the silent run are
printed. The bar is drawn on a terminal emulated in memory (rich's ``force_terminal``). Every
variant works between chunks, on the host; this measures what that adds with ``--chunks``
chunks. Numbers go to benchmarks/RESULTS.md.
"""

import argparse
import contextlib
import functools
import io
import statistics
import sys
import tempfile
import time
from unittest import mock

from rich.console import Console

from purembrl import run
from purembrl.algos import sac
from purembrl.driver import report

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    config = sac.Config.for_env("Pendulum-v1", total_steps=2000, eval_every=100,
                                eval_episodes=1)
    options = {"num_chunks": args.chunks, "table": False}
    bar = functools.partial(report.ProgressDisplay, console=Console(
        file=io.StringIO(), force_terminal=True, width=160))

    def silent():
        run.run(sac, config, 4, progress=False, **options)

    def lines():
        with contextlib.redirect_stderr(io.StringIO()):
            run.run(sac, config, 4, progress=True, **options)

    def rich_bar():
        with mock.patch.object(report, "ProgressDisplay", bar), \
                contextlib.redirect_stderr(io.StringIO()):
            run.run(sac, config, 4, progress=True, **options)

    def tensorboard():
        with tempfile.TemporaryDirectory() as tmp:
            logger = run.TensorBoard(tmp, run.curve_of(sac, config))
            run.run(sac, config, 4, progress=False, progress_fn=logger, **options)
            logger.close()

    variants = {"silent": silent, "progress lines": lines, "rich bar": rich_bar,
                "tensorboard": tensorboard}
    silent()  # compile once
    seconds = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    print(f"machine: {machine()}; SAC Pendulum-v1, 4 seeds, 2,000 steps, {args.chunks} chunks, "
          f"median of {args.repeats} interleaved repeats")
    print("| variant | seconds | ratio to silent |")
    print("|---|---|---|")
    base = statistics.median(seconds["silent"])
    for name, values in seconds.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.2f} | {med / base:.3f} |")


if __name__ == "__main__":
    main()
