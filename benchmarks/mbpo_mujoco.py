"""MBPO on MuJoCo's InvertedPendulum through the host path, side by side with mbrl-lib's MBPO
(issue 21).

    python benchmarks/mbpo_mujoco.py [--seeds 4] [--steps 20000] [--peer PYTHON]
        [--peer-seeds 2] [--peer-steps 20000] [--peer-init 5000] [--json FILE]

Ours: the command a user types, ``python -m purembrl train mbpo --env
gymnasium:InvertedPendulum-v5 --seeds N`` at its preset (the MBPO authors' InvertedPendulum
config: 250-step epochs, G = 10, 400 rollouts per step of length 1, real ratio 0.05, target
entropy -0.05, the known termination; 500 uniformly random steps first), ``--steps`` env steps
in all, 5 evaluation episodes per 250-step epoch as the peer runs them, one chunk per evaluation
so that every progress line is stamped as it arrives.

The peer (``--peer``: the Python of its venv, ``../shared/peers/README.md``): mbrl-lib 0.2.0's
MBPO with its shipped ``mbpo_inv_pendulum`` override on InvertedPendulum-v4 (v4 pays 1 on the
terminating step, v5 0: the same return for an episode that reaches 1000 steps), one process per
seed, two at once (one per core), ``--peer-init`` exploration steps by its untrained policy
(its default 5000) then ``--peer-steps`` trained steps.

Printed: the median return over seeds at 1k, 2.5k, 5k, 10k and 20k env steps (the last
evaluation at or before; exploration steps counted; "-" before a run's first evaluation or past
its end) and at its last evaluation, each seed's env steps to a return of 950,
the seconds per env step as each library runs (ours: all seeds in one program, so per seed-step
too), and both FLOP rates against this machine's large-matmul rate (FLOPs counted from the
network sizes as ``benchmarks/mbpo_speed.py`` counts them, each with its own model-fit epochs).
Numbers go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402
from model_speed import matmul_gflops  # noqa: E402
from time_to_result import _PROGRESS, PEERS, stamp_lines  # noqa: E402

ENV = "gymnasium:InvertedPendulum-v5"
BUDGETS = (1000, 2500, 5000, 10_000, 20_000)
GOAL = 950.0
PEER_FIRST_FIT = 250  # mbpo_inv_pendulum's freq_train_model: trained steps before its first fit


def at_budgets(steps, returns) -> list[float | None]:
    """The return of the last evaluation at or before each budget (None before the first
    evaluation, and for a budget the run did not reach)."""
    steps, returns = np.asarray(steps), np.asarray(returns)
    out = []
    for budget in BUDGETS:
        seen = np.nonzero(steps <= budget)[0]
        out.append(float(returns[seen[-1]]) if seen.size and steps[-1] >= budget else None)
    return out


def first_at_goal(steps, returns) -> int | None:
    hits = np.nonzero(np.asarray(returns) >= GOAL)[0]
    return int(np.asarray(steps)[hits[0]]) if hits.size else None


def ours(seeds: int, total_steps: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "purembrl", "train", "mbpo", "--env", ENV, "--seeds",
                   str(seeds), "--set", f"total_steps={total_steps}", "--set", "eval_episodes=5",
                   "--out", out, "--overwrite", "--no-checkpoint", "--chunks", str(10**9)]
        lines, total, code = stamp_lines(command)
        if code != 0:
            raise SystemExit("ours failed:\n" + "\n".join(line for _, line in lines[-20:]))
        with open(os.path.join(out, "metrics.json")) as f:
            metrics = json.load(f)
    stamps = {int(m.group(1)): t for t, line in lines if (m := _PROGRESS.search(line))}
    steps = np.asarray(metrics["env_steps"])[0]
    returns = np.asarray(metrics["eval_return"])  # [seeds, evaluations]
    first, last = min(stamps), max(stamps)
    per_step = (stamps[last] - stamps[first]) / (steps[last - 1] - steps[first - 1])
    return {"steps": steps.tolist(), "returns": returns.tolist(), "total_s": total,
            "s_per_step": per_step, "s_per_seed_step": per_step / seeds,
            "epochs": float(np.mean(metrics["model_epochs"])), "seeds": seeds}


def peer(python: str, seeds: int, trained: int, init: int) -> dict:
    results: list = [None] * seeds

    def one(i):
        env = {**os.environ, "MBRL_THREADS": "1", "OMP_NUM_THREADS": "1"}
        results[i] = stamp_lines([python, os.path.join(PEERS, "mbrl_lib_mbpo_mujoco.py"),
                                  "InvertedPendulum-v4", str(i), str(trained), "5", str(init)],
                                 env)

    for start in range(0, seeds, 2):  # two at once, one per core
        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(start, min(start + 2, seeds))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    runs = []
    for i, (lines, _, code) in enumerate(results):
        result = next((json.loads(line[len("RESULT "):]) for _, line in lines
                       if line.startswith("RESULT ")), None)
        if code != 0 or result is None:
            raise SystemExit(f"mbrl-lib seed {i} failed:\n" +
                             "\n".join(line for _, line in lines[-20:]))
        runs.append(result)
    return {"runs": runs}


def flops(total_steps: int, initial: int, epochs: float, idle_steps: int = 0) -> float:
    """The trained part's FLOPs of one seed at our preset's sizes (mbpo_speed's count);
    ``idle_steps`` trained steps without SAC updates."""
    from mbpo_speed import run_flops

    from purembrl.algos import mbpo

    config = mbpo.Config.for_env(ENV, total_steps=total_steps, initial_random_steps=initial)
    return run_flops(config, epochs, obs_dim=4, act_dim=1, idle_steps=idle_steps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--peer", default=None, help="the Python of mbrl-lib's venv")
    parser.add_argument("--peer-seeds", type=int, default=2)
    parser.add_argument("--peer-steps", type=int, default=20_000)
    parser.add_argument("--peer-init", type=int, default=5000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    peak = matmul_gflops()
    mine = ours(args.seeds, args.steps)
    median = np.median(np.asarray(mine["returns"]), axis=0)
    rows = [("purembrl MBPO, InvertedPendulum-v5", args.seeds,
             at_budgets(mine["steps"], median), (mine["steps"][-1], median[-1]),
             [first_at_goal(mine["steps"], r) for r in mine["returns"]],
             f"{mine['s_per_step'] * 1e3:.0f} ({mine['s_per_seed_step'] * 1e3:.0f} per seed)",
             flops(args.steps, 500, mine["epochs"]) * args.seeds / mine["s_per_step"]
             / (args.steps - 500) / 1e9)]
    theirs = None
    if args.peer:
        theirs = peer(args.peer, args.peer_seeds, args.peer_steps, args.peer_init)
        curves = [([e["total_env_steps"] for e in r["evals"]], [e["ret"] for e in r["evals"]])
                  for r in theirs["runs"]]
        length = min(len(c[0]) for c in curves)
        steps = curves[0][0][:length]
        median_theirs = np.median([c[1][:length] for c in curves], axis=0)
        ms = np.mean([r["wall_per_trained_step_ms"] for r in theirs["runs"]])
        epochs = float(np.mean([np.mean(r["fit_epochs"]) for r in theirs["runs"]]))
        trained = theirs["runs"][0]["trained_steps"]
        # mbrl-lib's first trained epoch makes no SAC update (its model buffer fills at the
        # epoch's end, with the first fit's rollouts)
        work = flops(args.peer_init + trained, args.peer_init, epochs,
                     idle_steps=PEER_FIRST_FIT)
        rate = work / (ms / 1e3 * trained) / 1e9
        rows.append(("mbrl-lib MBPO, InvertedPendulum-v4", args.peer_seeds,
                     at_budgets(steps, median_theirs), (steps[-1], median_theirs[-1]),
                     [first_at_goal(*c) for c in curves], f"{ms:.0f} per seed (one core each)",
                     rate))
    print(f"large jnp.dot: {peak:.1f} GFLOP/s")
    head = " | ".join(f"{b // 1000 if b % 1000 == 0 else b / 1000}k" for b in BUDGETS)
    print(f"| run | seeds | median return at {head} | last evaluation: env steps, median "
          f"return | env steps to {GOAL:.0f}, per seed | ms per env step | GFLOP/s (of matmul) |")
    print("|---|---|" + "---|" * len(BUDGETS) + "---|---|---|---|")
    for name, seeds, values, (last_step, last), hits, ms, rate in rows:
        cells = " | ".join("-" if v is None else f"{v:.0f}" for v in values)
        hits = ", ".join("never" if h is None else str(h) for h in hits)
        print(f"| {name} | {seeds} | {cells} | {last_step}, {last:.0f} | {hits} | {ms} | "
              f"{rate:.1f} ({rate / peak:.0%}) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ours": mine, "peer": theirs}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

