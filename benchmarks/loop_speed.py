"""The off-policy loop's speed at two revisions of purembrl, side by side on one machine.

    python benchmarks/loop_speed.py [--revs f82c21a,HEAD] [--algo mbpo] [--env Pendulum-v1]
                                    [--steps 1000] [--repeats 2] [--set FIELD=VALUE ...]

A restructuring of the loop must keep the numbers and should keep the speed. For each revision
(any git revision, or ``WORKTREE`` for the files as they are now) the script checks the tree out
into a temporary directory and, in a subprocess importing purembrl from there, builds
``Config.for_env(env, total_steps=initial_random_steps + steps, eval_every=steps, ...)`` and
times ``jax.jit(jax.vmap(make_train(config)))`` on one seed: the first call (compile and run),
then the best of ``--repeats`` further calls (the run alone). The revisions run one after the
other, alternating per repeat, so that drifts of the machine's speed hit both alike; the final
evaluation return of each is printed too, which must agree when the change keeps the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
import jax, numpy as np
from purembrl import algos

algo_name, env, steps, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sets = json.loads(sys.argv[5])
algo = algos.get(algo_name)
base = algo.Config.for_env(env=env)
fields = dict(total_steps=base.initial_random_steps + steps, eval_every=steps)
for item in sets:
    name, value = item.split("=", 1)
    fields[name] = json.loads(value)
config = algo.Config.for_env(env=env, **fields)
train = jax.jit(jax.vmap(algo.make_train(config)))
keys = jax.random.split(jax.random.key(0), 1)
start = time.perf_counter()
_, metrics = jax.block_until_ready(train(keys))
first = time.perf_counter() - start
runs = []
for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(train(keys))
    runs.append(time.perf_counter() - start)
print(json.dumps(dict(first=first, runs=runs,
                      eval_return=float(np.asarray(metrics["eval_return"])[0, -1]))))
"""


def checkout(rev: str, into: str) -> str:
    """The tree of ``rev`` (``WORKTREE``: the files as they are) under ``into``."""
    path = os.path.join(into, rev.replace("/", "_"))
    if rev == "WORKTREE":
        shutil.copytree(os.path.join(ROOT, "purembrl"), os.path.join(path, "purembrl"))
    else:
        os.makedirs(path)
        archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "purembrl"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", path], input=archive, check=True)
    return path


def time_once(path: str, args) -> dict:
    env = dict(os.environ, PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-c", CHILD, args.algo, args.env, str(args.steps),
                          "1", json.dumps(args.set)], env=env, cwd=path, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revs", default="f82c21a,HEAD")
    parser.add_argument("--algo", default="mbpo")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--set", action="append", default=[],
                        help="FIELD=VALUE, VALUE a JSON number or boolean (top-level fields)")
    args = parser.parse_args()
    revs = args.revs.split(",")
    print(f"machine: {machine()}")
    print(f"{args.algo} on {args.env}, {args.steps} trained steps, 1 seed, "
          f"set {args.set or 'nothing'}")
    results = {rev: [] for rev in revs}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {rev: checkout(rev, tmp) for rev in revs}
        for _ in range(args.repeats):
            for rev in revs:
                results[rev].append(time_once(paths[rev], args))
                print(f"  {rev}: {results[rev][-1]}", flush=True)
    print("\n| revision | compile + first run (s) | run (s, best) | per env step (ms) | "
          "final eval return |")
    print("| --- | --- | --- | --- | --- |")
    best = {}
    for rev in revs:
        best[rev] = min(r["runs"][0] for r in results[rev])
        first = min(r["first"] for r in results[rev])
        ret = {round(r["eval_return"], 4) for r in results[rev]}
        print(f"| {rev} | {first:.1f} | {best[rev]:.1f} | {1000 * best[rev] / args.steps:.1f} "
              f"| {', '.join(map(str, sorted(ret)))} |")
    base = revs[0]
    for rev in revs[1:]:
        print(f"{rev} / {base} run time: {best[rev] / best[base]:.3f}")


if __name__ == "__main__":
    main()
