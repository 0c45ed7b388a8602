"""Wall-clock to a result, side by side with the peers (issue 24).

For each algorithm on its main task: ``--seeds`` seeds in one command on this machine, the
seconds from the command's start (Python's start, imports and compilation included) to the
evaluation at which the seeds' median return first reaches the task's threshold. This is the
number a user with one laptop feels.

    python benchmarks/time_to_result.py [--rows sac,dqn,mbpo] [--seeds 8]
        [--rejax-python /tmp/venv-rejax/bin/python] [--mbrl-python /tmp/venv-mbrl/bin/python]
        [--mbrl-seeds 2]

**purembrl** runs as a user types it: ``python -m purembrl train ALGO --env ENV --seeds N
--chunks K --no-compile-cache`` (K at least the run's iterations: one iteration per chunk, so
that a progress line arrives after every evaluation; ``--no-compile-cache``: a first run, which
compiles). The script stamps each
progress line as it arrives; the result is the stamp of the evaluation at which the median over
seeds (``metrics.json``) first reaches the threshold.

**Peers**, each in its own virtual environment (``../shared/peers/README.md``), with its own tuned
settings:

* rejax SAC on Pendulum and rejax DQN on CartPole (``rejax_sac_dqn.py``, the configs of rejax's
  repository). rejax trains in one jitted call, so nothing arrives before the end; the time of
  an evaluation is computed from the parts the script measures: import + compilation of the
  vmapped program + its run time scaled by the fraction of env steps done at that evaluation
  (a run's cost is near linear in its steps). The script also compiles and runs a single seed
  three times first; that time is left out.
* mbrl-lib's MBPO on Pendulum (``mbrl_lib_mbpo.py``: its ``mbpo_cartpole`` override, 1000
  random steps, then 3000 trained steps). It runs one seed per process, ``--mbrl-seeds`` of them
  at once (one per core here); each evaluation line is stamped as it arrives. The median over
  those seeds is the result for that many seeds at once; for ``--seeds`` seeds the time is
  projected: the same rounds of ``--mbrl-seeds`` processes one after another, the last round
  stopping at the result's evaluation (stated as a projection in the table).

Numbers go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(os.path.dirname(ROOT), "shared", "peers")


@dataclass(frozen=True)
class Row:
    """One algorithm on its main task, the return that counts as solved, and its peer."""

    algo: str
    env: str
    threshold: float
    peer: str | None = None
    sets: tuple[str, ...] = ()


# Pendulum: -200, the threshold RESULTS.md's Pendulum tables use; CartPole: 475, gymnasium's
# reward threshold for CartPole-v1.
ROWS = {
    "sac": Row("sac", "Pendulum-v1", -200.0, "rejax-sac"),
    "dqn": Row("dqn", "CartPole-v1", 475.0, "rejax-dqn"),
    "mbpo": Row("mbpo", "Pendulum-v1", -200.0, "mbrl-lib"),
    "mbpo-cartpole": Row("mbpo", "CartPole-v1", 475.0),
    "dyna": Row("dyna", "Pendulum-v1", -200.0),
    "mbve": Row("mbve", "Pendulum-v1", -200.0),
    "mba": Row("mba", "Pendulum-v1", -200.0),
}

_PROGRESS = re.compile(r"\| iteration (\d+)/(\d+) \|")


def first_reaching(curve, threshold: float) -> int | None:
    """Index of the first entry of ``curve`` at or above ``threshold`` (None if none)."""
    hits = np.nonzero(np.asarray(curve) >= threshold)[0]
    return int(hits[0]) if hits.size else None


def stamp_lines(command: list[str], env=None) -> tuple[list[tuple[float, str]], float, int]:
    """Run ``command``, stamping every line of its stdout and stderr with the seconds since its
    start: (stamped lines, total seconds, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    lines: list[tuple[float, str]] = []
    lock = threading.Lock()

    def read(stream):
        for line in stream:
            with lock:
                lines.append((time.perf_counter() - start, line.rstrip("\n")))

    readers = [threading.Thread(target=read, args=(s,)) for s in (proc.stdout, proc.stderr)]
    for reader in readers:
        reader.start()
    code = proc.wait()
    for reader in readers:
        reader.join()
    return sorted(lines), time.perf_counter() - start, code


def ours(row: Row, seeds: int, sets: tuple[str, ...] = ()) -> dict:
    """``python -m purembrl train`` on the row's task: the stamp of each iteration's progress
    line, the median curve over seeds, and the seconds to the threshold."""
    with tempfile.TemporaryDirectory() as out:
        base = [sys.executable, "-m", "purembrl", "train", row.algo, "--env", row.env,
                "--seeds", str(seeds), "--out", out, "--overwrite", "--no-checkpoint",
                "--no-compile-cache"] + [f"--set={s}" for s in row.sets + sets]
        # one iteration per chunk (``chunk_length`` rounds any larger count down to 1), so
        # each evaluation is stamped as it arrives
        lines, total, code = stamp_lines(base + ["--chunks", str(10**9)])
        if code != 0:
            raise SystemExit(f"{row.algo} on {row.env} failed:\n" +
                             "\n".join(line for _, line in lines[-20:]))
        with open(os.path.join(out, "metrics.json")) as f:
            metrics = json.load(f)
    stamps = {}
    for t, line in lines:
        match = _PROGRESS.search(line)
        if match:
            stamps[int(match.group(1))] = t
    curve = np.median(np.asarray(metrics["eval_return"]), axis=0)
    steps = np.asarray(metrics["env_steps"])[0]
    hit = first_reaching(curve, row.threshold)
    return {"who": "purembrl", "seeds": seeds, "curve": curve.tolist(), "steps": steps.tolist(),
            "hit_step": None if hit is None else int(steps[hit]),
            "seconds": None if hit is None else stamps[hit + 1], "total": total,
            "note": f"{len(stamps)} chunks, one per evaluation"}


def rejax(python: str, algo: str, total_steps: int, eval_freq: int, seeds: int,
          threshold: float) -> dict:
    """rejax's SAC or DQN through ``rejax_sac_dqn.py``: time to the threshold from its parts."""
    command = [python, os.path.join(PEERS, "rejax_sac_dqn.py"), algo, str(total_steps),
               str(seeds), "repo"]
    env = {**os.environ, "EVAL_FREQ": str(eval_freq)}
    lines, total, code = stamp_lines(command, env)
    text = [line for _, line in lines]
    if code != 0:
        raise SystemExit(f"rejax {algo} failed:\n" + "\n".join(text[-20:]))
    import_s = float(next(re.search(r"import_s=([\d.]+)", line).group(1) for line in text
                          if "import_s=" in line))
    result = json.loads(next(line for line in text if line.startswith("RESULT "))[7:])
    curves = np.asarray(result["curvesv"])  # per seed, mean over 128 episodes per evaluation
    steps = np.arange(curves.shape[1]) * eval_freq
    curve = np.median(curves, axis=0)
    hit = first_reaching(curve, threshold)
    run = result["runv_s"][0]
    seconds = (None if hit is None else
               import_s + result["compilev_s"] + run * steps[hit] / total_steps)
    return {"who": f"rejax {algo}", "seeds": seeds, "curve": curve.tolist(),
            "steps": steps.tolist(), "hit_step": None if hit is None else int(steps[hit]),
            "seconds": seconds, "total": import_s + result["compilev_s"] + run,
            "note": f"import {import_s:.1f} s + compile {result['compilev_s']:.1f} s + run "
                    f"{run:.1f} s for {total_steps} steps (one vmapped call)"}


def mbrl_lib(python: str, parallel: int, seeds: int, threshold: float,
             init_steps: int = 1000, trained_steps: int = 3000) -> dict:
    """mbrl-lib's MBPO on Pendulum, ``parallel`` seeds at once (one process each)."""
    results = [None] * parallel

    def one(i):
        command = [python, os.path.join(PEERS, "mbrl_lib_mbpo.py"), str(i), str(init_steps),
                   str(trained_steps)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        results[i] = stamp_lines(command, env)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_seed, walls = [], []
    for i, (lines, total, code) in enumerate(results):
        if code != 0:
            raise SystemExit(f"mbrl-lib seed {i} failed:\n" +
                             "\n".join(line for _, line in lines[-20:]))
        # its logger's evaluation lines, printed as they happen: "| results | S: 199 | R: ..."
        # with S counting trained steps from 0, after the random ones
        evals = [(init_steps + int(m.group(1)) + 1, float(m.group(2)), t) for t, line in lines
                 if (m := re.search(r"\| results\s+\| S: (\d+) \| R: (-?[\d.]+)", line))]
        per_seed.append(evals)
        walls.append(total)
    length = min(len(e) for e in per_seed)
    steps = np.asarray([per_seed[0][j][0] for j in range(length)])
    curve = np.median([[e[j][1] for j in range(length)] for e in per_seed], axis=0)
    hit = first_reaching(curve, threshold)
    rounds = -(-seeds // parallel)
    at_hit = None if hit is None else max(e[hit][2] for e in per_seed)
    seconds = None if hit is None else (rounds - 1) * max(walls) + at_hit
    reached = "never" if hit is None else f"{at_hit:.0f} s"
    note = (f"{parallel} seeds at once, one process each: {reached} to the median's first "
            f"evaluation at the threshold, {max(walls):.0f} s in all; "
            f"for {seeds} seeds projected as {rounds} such rounds, the last stopping there; "
            f"{init_steps} random + {trained_steps} trained steps")
    return {"who": "mbrl-lib MBPO", "seeds": seeds, "curve": curve.tolist(),
            "steps": steps.tolist(), "hit_step": None if hit is None else int(steps[hit]),
            "seconds": seconds, "total": rounds * max(walls), "note": note,
            "evals": per_seed, "walls": walls}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="sac,dqn,mbpo")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--rejax-python", default="/tmp/venv-rejax/bin/python")
    parser.add_argument("--mbrl-python", default="/tmp/venv-mbrl/bin/python")
    parser.add_argument("--mbrl-seeds", type=int, default=2)
    parser.add_argument("--no-peers", action="store_true", help="purembrl's rows only")
    parser.add_argument("--json", default=None, help="also write every result here")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a config field for purembrl's rows (a smoke test's budget)")
    args = parser.parse_args(argv)
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    print(f"machine: {machine()}; {args.seeds} seeds per command")
    print("| algorithm, task (threshold) | who | median first at the threshold, env steps | "
          "seconds to it | the whole command, s | note |")
    print("|---|---|---|---|---|---|")
    everything = []

    def show(row, result):
        seconds = "never" if result["seconds"] is None else f"{result['seconds']:.0f}"
        print(f"| {row.algo}, {row.env} ({row.threshold:g}) | {result['who']} | "
              f"{result['hit_step'] or 'never'} | {seconds} | {result['total']:.0f} | "
              f"{result['note']} |", flush=True)
        print(f"    median curve: {np.round(result['curve']).astype(int).tolist()} at "
              f"{result['steps']}", flush=True)
        everything.append({"row": row.algo, "env": row.env, **result})

    for name in names:
        row = ROWS[name]
        show(row, ours(row, args.seeds, tuple(args.set)))
        if args.no_peers or row.peer is None:
            continue
        if row.peer == "rejax-sac":
            show(row, rejax(args.rejax_python, "sac", 10_000, 1000, args.seeds, row.threshold))
        elif row.peer == "rejax-dqn":
            show(row, rejax(args.rejax_python, "dqn", 100_000, 5000, args.seeds, row.threshold))
        elif row.peer == "mbrl-lib":
            show(row, mbrl_lib(args.mbrl_python, args.mbrl_seeds, args.seeds, row.threshold))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
