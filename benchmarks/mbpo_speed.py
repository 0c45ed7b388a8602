"""Whole-run MBPO wall-clock at mbrl-lib's per-step work, side by side with mbrl-lib itself.

    python benchmarks/mbpo_speed.py [--steps 1000] [--vmap-seeds 8[,64...]] [--vmap-steps 400]
                                    [--mbrl-python /tmp/venv-mbrl/bin/python]

The work per env step is mbrl-lib 0.2.0's MBPO on Pendulum (its ``mbpo_cartpole`` override, run
by ``../shared/peers/mbrl_lib_mbpo.py``): G = 20 SAC updates of batch 256 with 256 x 256 ReLU
networks, 400 model rollouts per step of length 1 (branched every 200 steps, 80,000 at a time),
a 7 x 4 x 200 ensemble retrained every 200 steps, 1000 initial random steps, then ``--steps``
trained steps. Reported:

* purembrl, 1 seed: compile time, run time per trained env step (compile excluded: a second
  call of the compiled run), and the run's FLOP rate against a large ``jnp.dot`` measured in the
  same process. FLOPs are counted analytically from the network sizes (multiply-adds x 2;
  training steps as 3x their forward pass; SAC: the target, critic and actor passes), with the
  model fits' epochs read from the run's metrics.
* purembrl, each of ``--vmap-seeds`` (a comma-separated list) seeds under one ``jit(vmap)``:
  time per seed-step and the ratio to one seed's time at the same ``--vmap-steps`` (one seed
  runs unbatched, as the driver runs it: ``run.batched``; it is timed once and reused when
  ``--vmap-steps`` equals ``--steps``).
* mbrl-lib, 1 seed (when ``--mbrl-python`` points at its virtual environment): its own
  wall-clock per trained step, in a subprocess on the same machine, and the epochs of each of
  its model fits (read by wrapping its ``ModelTrainer.train``). Both stop fitting by the same
  rule (5 epochs without a 1% holdout improvement; our epoch cap is lifted for this), but the
  epochs each run takes differ, so the speed-up is also given at identical work: the ratio of
  the FLOP rates, mbrl-lib's FLOPs counted with its own epochs.

Goals: >= 3x faster than mbrl-lib per env step at identical work, and >= 60% of the matmul rate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402
from model_speed import matmul_gflops  # noqa: E402

from purembrl import dynamics, run  # noqa: E402
from purembrl.algos import mbpo  # noqa: E402
from purembrl.learners import SACConfig  # noqa: E402

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peers",
                    "mbrl_lib_mbpo.py")


# mbrl-lib's model trainer has no epoch cap: it stops after 5 epochs in which no member's
# holdout MSE improved by 1% (the rule ``dynamics.fit`` uses too). Our default cap of 100 epochs
# would make our fits smaller than its; lifted here so the two runs do the same work.
UNCAPPED = 10_000


def mbrl_lib_config(trained_steps: int) -> mbpo.Config:
    return mbpo.Config.for_env(
        env="Pendulum-v1", initial_random_steps=1000, total_steps=1000 + trained_steps,
        eval_every=trained_steps if trained_steps % 200 == 0 else 200, eval_episodes=5,
        batch_size=256, updates_per_step=20, real_ratio=0.05, model_train_freq=200,
        rollout_freq=200, rollouts_per_step=400, rollout_schedule=(1, 1, 1, 1),
        epoch_length=200, model_retain_epochs=1, buffer_size=100_000,
        known_termination=True, model=dynamics.EnsembleConfig(max_epochs=UNCAPPED),
        learner=SACConfig(hidden_sizes=(256, 256), activation="relu"))


def mlp_macs(sizes) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def run_flops(config: mbpo.Config, epochs: float, obs_dim: int = 3, act_dim: int = 1,
              idle_steps: int = 0) -> float:
    """FLOPs of the trained part of one seed's run (see the module docstring), its model fits
    taking ``epochs`` epochs each on average; Pendulum's sizes unless told. ``idle_steps``:
    trained steps that made no SAC update (mbrl-lib's first trained epoch, whose model buffer
    is empty until its first fit)."""
    h = config.learner.hidden_sizes
    critic = mlp_macs([obs_dim + act_dim, *h, 1])
    actor = mlp_macs([obs_dim, *h, 2 * act_dim])
    # target: actor + 2 critics forward; critic loss: 2 critics x 3; actor loss: actor x 3 and
    # 2 critics forward + backward to the action (x 2)
    sac_macs = config.batch_size * (actor + 2 * critic + 6 * critic + 3 * actor + 4 * critic)
    trained = config.total_steps - config.initial_random_steps
    sac_flops = 2 * sac_macs * config.updates_per_step * (trained - idle_steps)
    model = mlp_macs([obs_dim + act_dim, *config.model.hidden_sizes, 2 * (obs_dim + 1)])
    members = config.model.num_members
    rollout_flops = 2 * config.rollouts_per_step * trained * (members * model + actor)
    fit_flops = 0.0
    fits = trained // config.model_train_freq
    for i in range(fits):
        size = config.initial_random_steps + i * config.model_train_freq
        holdout = min(int(size * config.model.holdout_ratio), config.model.max_holdout)
        steps = -(-(size - holdout) // config.model.batch_size)
        fit_flops += epochs * (steps * 3 * 2 * members * config.model.batch_size * model
                               + 2 * members * holdout * model)
    return sac_flops + rollout_flops + fit_flops


def time_ours(config: mbpo.Config, seeds: int):
    keys = jax.random.split(jax.random.key(0), seeds)
    train = jax.jit(run.batched(mbpo.make_train(config)))  # as the driver runs seeds
    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    _, metrics = compiled(keys)
    jax.block_until_ready(metrics)
    run_s = time.perf_counter() - start
    return compile_s, run_s, jax.tree.map(lambda x: np.asarray(x)[0], metrics)


# Runs the peer script with mbrl-lib's ModelTrainer.train wrapped to record how many epochs
# each model fit ran (early stopping decides), so the two runs' model work can be compared.
_COUNT_EPOCHS = """
import json, runpy, sys
import mbrl.models.model_trainer as model_trainer
_train, EPOCHS = model_trainer.ModelTrainer.train, []
def train(self, *args, **kwargs):
    out = _train(self, *args, **kwargs)
    EPOCHS.append(len(out[0]))
    return out
model_trainer.ModelTrainer.train = train
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("EPOCHS", json.dumps(EPOCHS), flush=True)
"""


def time_mbrl_lib(python: str, trained_steps: int):
    """mbrl-lib's own MBPO (the peer runner) in a subprocess: its RESULT line, plus ``epochs``,
    the epochs of each of its model fits."""
    out = subprocess.run([python, "-c", _COUNT_EPOCHS, PEER, "0", "1000", str(trained_steps),
                          "1"], capture_output=True, text=True, timeout=3600)
    result, epochs = None, None
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
        if line.startswith("EPOCHS "):
            epochs = json.loads(line[len("EPOCHS "):])
    if result is None:
        raise RuntimeError(f"mbrl-lib run failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    result["epochs"] = epochs or []
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--vmap-seeds", default="8",
                        help="seed counts to time under one vmap, comma-separated")
    parser.add_argument("--vmap-steps", type=int, default=400)
    parser.add_argument("--mbrl-python", default=None)
    args = parser.parse_args(argv)

    print(f"machine: {machine()}")
    peak = matmul_gflops()
    config = mbrl_lib_config(args.steps)
    compile_s, run_s, metrics = time_ours(config, 1)
    flops = run_flops(config, float(np.mean(metrics["model_epochs"])))
    per_step_ms = 1000 * run_s / args.steps
    rate = flops / run_s / 1e9
    print(f"large jnp.dot: {peak:.1f} GFLOP/s")
    print(f"purembrl MBPO, 1 seed, {args.steps} trained steps: compile {compile_s:.1f} s, run "
          f"{run_s:.1f} s = {per_step_ms:.1f} ms per env step; {flops / 1e12:.2f} TFLOP, "
          f"{rate:.1f} GFLOP/s = {rate / peak:.1%} of matmul (goal >= 60%)", flush=True)
    print(f"  final eval return {float(metrics['eval_return'][-1]):.0f}, model epochs per fit "
          f"{float(np.mean(metrics['model_epochs'])):.1f}")

    counts = [int(n) for n in args.vmap_seeds.split(",") if int(n) > 1]
    if counts:
        vconfig = mbrl_lib_config(args.vmap_steps)
        one_s = run_s if args.vmap_steps == args.steps else time_ours(vconfig, 1)[1]
        print(f"purembrl MBPO, {args.vmap_steps} trained steps: 1 seed {one_s:.1f} s", flush=True)
        for seeds in counts:
            compile_many, many_s, _ = time_ours(vconfig, seeds)
            per_seed_step = 1000 * many_s / args.vmap_steps / seeds
            print(f"  {seeds} seeds under vmap {many_s:.1f} s ({many_s / one_s:.2f}x the time "
                  f"for {seeds}x the work; {per_seed_step:.2f} ms per seed-step; compile "
                  f"{compile_many:.1f} s)", flush=True)

    if args.mbrl_python:
        peer = time_mbrl_lib(args.mbrl_python, args.steps)
        theirs = peer["wall_per_trained_step_ms"]
        print(f"mbrl-lib 0.2.0 MBPO, 1 seed, {args.steps} trained steps: {peer['wall_s']:.1f} s "
              f"= {theirs:.1f} ms per trained env step (its 1000 random steps included in the "
              f"wall time); last eval {peer['evals'][-1] if peer['evals'] else None}")
        if peer["epochs"]:
            ours = float(np.mean(metrics["model_epochs"]))
            print(f"  mbrl-lib model epochs per fit {np.mean(peer['epochs']):.1f} over "
                  f"{len(peer['epochs'])} fits (ours {ours:.1f})")
        print(f"speed-up per env step: {theirs / per_step_ms:.2f}x")
        if peer["epochs"]:
            their_flops = run_flops(config, float(np.mean(peer["epochs"])))
            their_rate = their_flops / peer["wall_s"] / 1e9
            print(f"  mbrl-lib's work {their_flops / 1e12:.2f} TFLOP ({their_flops / flops:.2f}x "
                  f"ours), {their_rate:.1f} GFLOP/s; speed-up at identical work (FLOP rate "
                  f"ratio): {rate / their_rate:.2f}x (goal >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
