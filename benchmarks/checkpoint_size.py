"""Checkpoint size with and without leaving out the unfilled rows of the replay buffers.

    python benchmarks/checkpoint_size.py [--steps 1500]

A 1-seed MBPO run on Pendulum-v1 with the generic million-row env buffer (a small model so
that it runs in a minute or two on a CPU); its final state is saved by ``checkpoint.save`` as
it is (buffers up to their size) and with the cut switched off (the whole buffers), and both
files' sizes and the save time are printed. Numbers go to benchmarks/RESULTS.md.
"""

import argparse
import os
import platform
import tempfile
import time
from unittest import mock

from purembrl import checkpoint, run
from purembrl.algos import mbpo
from purembrl.config import update


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    config = mbpo.Config.for_env("Pendulum-v1", total_steps=args.steps, eval_every=500,
                                 eval_episodes=1, buffer_size=1_000_000, updates_per_step=1,
                                 rollouts_per_step=20)
    config = update(config, model={"num_members": 3, "num_elites": 2, "max_epochs": 3,
                                   "hidden_sizes": (64, 64)})
    result = run.run(mbpo, config, 1, progress=False, table=False)
    with tempfile.TemporaryDirectory() as tmp:
        cut, whole = os.path.join(tmp, "cut.npz"), os.path.join(tmp, "whole.npz")
        start = time.perf_counter()
        checkpoint.save(cut, (result.state,))
        seconds = time.perf_counter() - start
        with mock.patch.object(checkpoint, "_unfilled_rows", lambda tree: {}):
            checkpoint.save(whole, (result.state,))
        small, big = os.path.getsize(cut), os.path.getsize(whole)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"MBPO Pendulum-v1, 1 seed, {args.steps} steps, env buffer {config.buffer_size:,} "
          f"rows, model buffer {config.model_buffer_size:,} rows")
    print(f"checkpoint: {small / 1e6:.2f} MB (buffers up to their size), {big / 1e6:.1f} MB "
          f"(whole buffers): {big / small:.0f}x smaller; save {seconds:.2f} s")


if __name__ == "__main__":
    main()
