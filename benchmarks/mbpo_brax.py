"""MBPO on the paper's MuJoCo-style tasks through Brax (a GPU benchmark).

    python benchmarks/mbpo_brax.py [--env brax-hopper] [--seeds 4] [--steps 125000]
                                   [--eval-every 5000] [--out DIR] [--no-checkpoint]

Janner et al. 2019 report MBPO on Hopper at a return of about 3,300 by 100-125k env steps.
This script runs ``mbpo.Config.for_env(env=...)`` with the env's preset, for Hopper the paper's
setting (7 x 4 x 200 ensemble, 5 elites, refit every 250 steps, 400 rollouts per step with
the length schedule [20, 100, 1, 15] over epochs of 1000 steps, real ratio 0.05, G = 20 SAC
updates per step, 5000 random steps, target entropy -1, the known termination function, a
1000-step time limit), for ``--seeds`` seeds in one ``jit(vmap)`` through the driver (progress
line, checkpoints: resume an interrupted run with ``--resume``), and prints the median [IQR]
evaluation return at each budget next to the paper's figure. At 15-step rollouts the model
buffer holds 6M transitions per seed (about 0.65 GB): ``--no-checkpoint`` skips writing it
after every chunk. Brax's Hopper is not MuJoCo-Gym's Hopper-v2 (other physics, contact model and
reward details), so the comparison is of shape and scale, not exact numbers.

Needs ``pip install "purembrl[brax]"`` and, at the paper's budget, a GPU: on a 2-core CPU a
single Hopper step of Brax's physics inside the loop costs milliseconds, and MBPO's 20 updates
per step make 125k steps a matter of days. On one H200 the physics step is still the largest
part of a step (4.7 ms for 4 seeds; ``benchmarks/mbpo_profile.py`` times the parts apart), and
the whole run at the paper's budget is projected at about 33 minutes there (RESULTS.md).
``--steps`` and ``--env brax-inverted_pendulum`` give a short check anywhere.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

from purembrl import run  # noqa: E402
from purembrl.algos import mbpo  # noqa: E402

PAPER = {"brax-hopper": "about 3,300 by 100-125k steps (MuJoCo Hopper-v2)",
         "brax-walker2d": "about 3,500-4,000 by 300k steps (Walker2d-v2)",
         "brax-halfcheetah": "about 10,000-11,000 by 400k steps (HalfCheetah-v2)",
         "brax-ant": "about 5,000 by 300k steps (Ant-v2)",
         "brax-inverted_pendulum": "1,000 (the time limit) within 15k steps (InvertedPendulum-v2)"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="brax-hopper", choices=tuple(PAPER))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=125_000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--chunks", type=int, default=25)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--checkpoint", action=argparse.BooleanOptionalAction, default=True,
                        help="save the whole state after every chunk (default: yes)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    out = args.out or f"runs/mbpo_{args.env}"
    print(f"machine: {machine()}")
    config = mbpo.Config.for_env(env=args.env, total_steps=args.steps, eval_every=args.eval_every)
    result = run.run(mbpo, config, args.seeds, out=out, num_chunks=args.chunks,
                     resume=args.resume, checkpoint=args.checkpoint, table=False)
    steps = result.metrics["env_steps"][0]
    returns = result.metrics["eval_return"]
    print(f"\n{args.env}, {args.seeds} seeds, MBPO preset; paper: {PAPER[args.env]}")
    print(f"{'env steps':>10}  {'median [IQR] return':>26}")
    for i, s in enumerate(steps):
        q25, med, q75 = np.percentile(returns[:, i], [25, 50, 75])
        print(f"{int(s):>10}  {med:>10.0f} [{q25:.0f}, {q75:.0f}]")
    print(f"wall-clock {result.seconds:.0f} s; results in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
