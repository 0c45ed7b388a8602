"""MBPO on MuJoCo's InvertedPendulum or Hopper through the host path, side by side with
mbrl-lib's MBPO (issue 21).

    python benchmarks/mbpo_mujoco.py [--env gymnasium:InvertedPendulum-v5] [--seeds 4]
        [--steps 20000] [--peer PYTHON] [--peer-seeds 2] [--peer-steps 20000]
        [--peer-init 5000] [--peer-wall SECONDS] [--json FILE]

Ours: the command a user types, ``python -m purembrl train mbpo --env ENV --seeds N`` at its
preset, ``--steps`` env steps in all, 5 evaluation episodes per epoch as the peer runs them
(InvertedPendulum's 250-step epochs, Hopper's 1000), one chunk per evaluation so that every
progress line is stamped as it arrives. The presets: InvertedPendulum-v5, the MBPO authors'
config (250-step epochs, G = 10, 400 rollouts per step of length 1, real ratio 0.05, target
entropy -0.05, the known termination; 500 uniformly random steps first); Hopper-v5, the paper's
Hopper setting (G = 20, 256 x 256 SAC, 400 rollouts per step of length 1 rising to 15 over
epochs 20-100, the known termination; 5000 random steps first).

The peer (``--peer``: the Python of its venv, ``../shared/peers/README.md``): mbrl-lib 0.2.0's
MBPO with its shipped override (``mbpo_inv_pendulum`` on InvertedPendulum-v4, which pays 1 on
the terminating step where v5 pays 0: the same return for an episode that reaches 1000 steps;
``mbpo_hopper`` on Hopper-v4, whose setting is heavier than the paper's: G = 40 SAC updates with
512 x 512 networks), one process per seed, two at once (one per core), ``--peer-init``
exploration steps by its untrained policy (its default 5000) then ``--peer-steps`` trained
steps, stopped at its first evaluation past ``--peer-wall`` seconds if given.

Printed: the median return over seeds at the task's budgets of env steps (InvertedPendulum 1k,
2.5k, 5k, 10k, 20k; Hopper 6k, 8k, 10k, 15k, 20k; the last
evaluation at or before; exploration steps counted; "-" before a run's first evaluation or past
its end) and at its last evaluation, each seed's env steps to the task's goal return (950;
Hopper 1000), the seconds per trained env step as each library runs (ours: all seeds in one
program, so per seed-step too; both without the initial steps), and both FLOP rates against
this machine's large-matmul rate (FLOPs counted from the network sizes as
``benchmarks/mbpo_speed.py`` counts them, each with its own SAC and model-fit epochs).
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

# Per task: mbrl-lib's env, our preset's initial random steps, the evaluation period (the peer's
# epoch), the return whose first crossing is reported, the budgets of the table, the sizes, and
# the peer's SAC (updates per step, hidden width) and ``freq_train_model`` (trained steps before
# its first fit). Hopper's goal of 1000 (hopping forward) is this benchmark's mark for a short
# run; the paper reports about 3,300 after 125k steps.
TASKS = {
    "gymnasium:InvertedPendulum-v5": dict(
        peer_env="InvertedPendulum-v4", initial=500, eval_every=250, goal=950.0,
        budgets=(1000, 2500, 5000, 10_000, 20_000), obs_dim=4, act_dim=1, peer_sac=(10, 256),
        peer_first_fit=250),
    "gymnasium:Hopper-v5": dict(
        peer_env="Hopper-v4", initial=5000, eval_every=1000, goal=1000.0,
        budgets=(6000, 8000, 10_000, 15_000, 20_000), obs_dim=11, act_dim=3, peer_sac=(40, 512),
        peer_first_fit=250),
}


def at_budgets(steps, returns, budgets) -> list[float | None]:
    """The return of the last evaluation at or before each budget (None before the first
    evaluation, and for a budget the run did not reach)."""
    steps, returns = np.asarray(steps), np.asarray(returns)
    out = []
    for budget in budgets:
        seen = np.nonzero(steps <= budget)[0]
        out.append(float(returns[seen[-1]]) if seen.size and steps[-1] >= budget else None)
    return out


def first_at_goal(steps, returns, goal: float) -> int | None:
    hits = np.nonzero(np.asarray(returns) >= goal)[0]
    return int(np.asarray(steps)[hits[0]]) if hits.size else None


def ours(env: str, seeds: int, total_steps: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "purembrl", "train", "mbpo", "--env", env, "--seeds",
                   str(seeds), "--set", f"total_steps={total_steps}", "--set", "eval_episodes=5",
                   "--set", f"eval_every={TASKS[env]['eval_every']}",
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


def peer(python: str, task: dict, seeds: int, trained: int, init: int,
         wall: float | None = None) -> dict:
    results: list = [None] * seeds

    def one(i):
        env = {**os.environ, "MBRL_THREADS": "1", "OMP_NUM_THREADS": "1"}
        if wall is not None:
            env["MBRL_MAX_WALL_S"] = str(wall)
        results[i] = stamp_lines([python, os.path.join(PEERS, "mbrl_lib_mbpo_mujoco.py"),
                                  task["peer_env"], str(i), str(trained), "5", str(init)], env)

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


def flops(env: str, total_steps: int, initial: int, epochs: float, idle_steps: int = 0,
          sac: tuple[int, int] | None = None) -> float:
    """The trained part's FLOPs of one seed at our preset's sizes (mbpo_speed's count), or with
    ``sac = (updates per step, hidden width)`` in place of our SAC's; ``idle_steps`` trained
    steps without SAC updates. (Rollouts are counted at length 1.)"""
    from mbpo_speed import run_flops

    from purembrl.algos import mbpo

    config = mbpo.Config.for_env(env, total_steps=total_steps, initial_random_steps=initial)
    if sac is not None:
        config = config.replace(updates_per_step=sac[0], learner=config.learner.replace(
            hidden_sizes=(sac[1], sac[1])))
    task = TASKS[env]
    return run_flops(config, epochs, obs_dim=task["obs_dim"], act_dim=task["act_dim"],
                     idle_steps=idle_steps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="gymnasium:InvertedPendulum-v5", choices=sorted(TASKS))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--peer", default=None, help="the Python of mbrl-lib's venv")
    parser.add_argument("--peer-seeds", type=int, default=2)
    parser.add_argument("--peer-steps", type=int, default=20_000)
    parser.add_argument("--peer-init", type=int, default=5000)
    parser.add_argument("--peer-wall", type=float, default=None,
                        help="stop each peer run at its first evaluation past this many seconds")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    task = TASKS[args.env]
    initial, budgets, goal = task["initial"], task["budgets"], task["goal"]
    name = args.env.split(":")[1]
    print(f"machine: {machine()}", flush=True)
    peak = matmul_gflops()
    mine = ours(args.env, args.seeds, args.steps)
    median = np.median(np.asarray(mine["returns"]), axis=0)
    rows = [(f"purembrl MBPO, {name}", args.seeds,
             at_budgets(mine["steps"], median, budgets), (mine["steps"][-1], median[-1]),
             [first_at_goal(mine["steps"], r, goal) for r in mine["returns"]],
             f"{mine['s_per_step'] * 1e3:.0f} ({mine['s_per_seed_step'] * 1e3:.0f} per seed)",
             flops(args.env, args.steps, initial, mine["epochs"]) * args.seeds
             / mine["s_per_step"] / (args.steps - initial) / 1e9)]
    print(f"ours done in {mine['total_s']:.0f} s", flush=True)
    theirs = None
    if args.peer:
        theirs = peer(args.peer, task, args.peer_seeds, args.peer_steps, args.peer_init,
                      args.peer_wall)
        curves = [([e["total_env_steps"] for e in r["evals"]], [e["ret"] for e in r["evals"]])
                  for r in theirs["runs"]]
        length = min(len(c[0]) for c in curves)
        steps = curves[0][0][:length]
        median_theirs = np.median([c[1][:length] for c in curves], axis=0)
        # its wall-clock per trained step without the exploration steps, as ours is timed
        ms = np.mean([r["wall_per_trained_step_ms_excl_init"] for r in theirs["runs"]])
        epochs = float(np.mean([np.mean(r["fit_epochs"]) for r in theirs["runs"]]))
        trained = float(np.mean([r["trained_steps"] for r in theirs["runs"]]))
        # mbrl-lib's first trained epoch makes no SAC update (its model buffer fills at the
        # epoch's end, with the first fit's rollouts)
        work = flops(args.env, args.peer_init + int(trained), args.peer_init, epochs,
                     idle_steps=task["peer_first_fit"], sac=task["peer_sac"])
        rate = work / (ms / 1e3 * trained) / 1e9
        rows.append((f"mbrl-lib MBPO, {task['peer_env']}", args.peer_seeds,
                     at_budgets(steps, median_theirs, budgets), (steps[-1], median_theirs[-1]),
                     [first_at_goal(*c, goal) for c in curves],
                     f"{ms:.0f} per seed (one core each)", rate))
    print(f"large jnp.dot: {peak:.1f} GFLOP/s")
    head = " | ".join(f"{b // 1000 if b % 1000 == 0 else b / 1000}k" for b in budgets)
    print(f"| run | seeds | median return at {head} | last evaluation: env steps, median "
          f"return | env steps to {goal:.0f}, per seed | ms per trained env step | GFLOP/s (of "
          "matmul) |")
    print("|---|---|" + "---|" * len(budgets) + "---|---|---|---|")
    for row, seeds, values, (last_step, last), hits, ms, rate in rows:
        cells = " | ".join("-" if v is None else f"{v:.0f}" for v in values)
        hits = ", ".join("never" if h is None else str(h) for h in hits)
        print(f"| {row} | {seeds} | {cells} | {last_step}, {last:.0f} | {hits} | {ms} | "
              f"{rate:.1f} ({rate / peak:.0%}) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ours": mine, "peer": theirs}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
