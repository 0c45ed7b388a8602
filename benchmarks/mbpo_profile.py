"""Where does an MBPO run's time go? Its parts timed apart, and the whole run projected.

    python benchmarks/mbpo_profile.py [--env brax-hopper] [--seeds 4] [--sizes 5000,40000,125000]
                                      [--fit-epochs 10,30,100] [--set FIELD=VALUE ...]
                                      [--parts updates,rollouts,eval,fit]

The run is ``mbpo.Config.for_env(env=...)`` (its preset, changed by ``--set``), built from
the pieces of ``mbpo.make_parts`` and timed piece by piece under one ``jit(vmap)`` over
``--seeds`` seeds, compile excluded (best of ``--repeats`` calls), on a training state whose
buffers are filled to the sizes a long run reaches (rows tiled from the initial random steps:
the cost of a fit or a gather depends on how many rows there are, not on their values):

* real step: act with the exploration policy, step the env, store the transition
  (``updates_per_step=0``);
* G learner updates: one real step with its updates, less the real step alone;
* rollout batch: one ``branch`` (``rollouts_per_step * rollout_freq`` starts) at the schedule's
  shortest and longest rollout length (only the scheduled steps are computed; the projection
  interpolates linearly in the length);
* model fit: per epoch and the setup of a fit (split, normalisation: over the whole buffer), at
  each env-buffer size in ``--sizes``, from fits of exactly 2 and 6 epochs (``max_epochs =
  patience``); a real fit stops early, after ``model_epochs`` epochs, a metric of every run;
* evaluation: one ``eval_episodes``-episode evaluation of the deterministic policy.

Then the whole run's time per seed-batch is projected from these, with fits of each size in
``--fit-epochs`` epochs (interpolated linearly in the buffer size). Written to plan GPU time for
the paper's Hopper run (``benchmarks/mbpo_brax.py``): on a GPU the parts of one step are small
kernels, and which part dominates cannot be guessed from FLOPs. On one H200 the default command
took 178 s with its compiles (Hopper, 4 seeds: the real step's physics was the largest part, the
SAC updates the smallest; ``benchmarks/RESULTS.md``); a run of fewer ``--parts`` (the real step
is always timed) still compiles the Brax physics and fills the buffers first: give it minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

from purembrl import interact, offpolicy  # noqa: E402
from purembrl.__main__ import build_config  # noqa: E402
from purembrl.algos import mbpo  # noqa: E402


def best_seconds(fn, args, repeats: int) -> float:
    """Best wall-clock of ``repeats`` calls of ``fn(*args)`` after a first call that compiles
    (pass one ``jax.jit`` function for several arguments of the same shapes: one compile)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def filled(state, env_rows: int):
    """One seed's state with ``env_rows`` rows in the env buffer and a full model buffer, both
    tiled from the env buffer's rows (the initial random steps)."""
    env, model = state.replay, state.model_buffer
    n = min(env_rows, env.capacity)
    tile = lambda d, rows: d[jnp.arange(rows) % jnp.maximum(env.size, 1)]
    env_data = jax.tree.map(lambda d: d.at[:n].set(tile(d, n)), env.data)
    model_data = jax.tree.map(lambda d: tile(d, model.capacity), env.data)
    return state.replace(
        replay=env.replace(data=env_data, size=jnp.int32(n),
                               insert=jnp.int32(n % env.capacity)),
        model_buffer=model.replace(data=model_data, size=jnp.int32(model.capacity),
                                   insert=jnp.int32(0)))


def steps(part, count: int):
    """``count`` calls of ``part`` in a scan: ``(state, key) -> state``."""
    def run(state, key):
        state, _ = jax.lax.scan(part, state, jax.random.split(key, count))
        return state
    return run


PARTS = ("updates", "rollouts", "eval", "fit")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="brax-hopper")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--sizes", default="5000,40000,125000",
                        help="env-buffer sizes at which to time a fit epoch")
    parser.add_argument("--fit-epochs", default="10,30,100",
                        help="epochs per fit for the projection")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a config field, as the command line's --set")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="which parts to time besides the real step (comma-separated, of "
                             f"{', '.join(PARTS)}); the projection needs all of them")
    args = parser.parse_args(argv)
    parts_timed = set(args.parts.split(",")) - {""}
    if not parts_timed <= set(PARTS):
        parser.error(f"--parts: unknown {sorted(parts_timed - set(PARTS))}; choose from {PARTS}")
    config = build_config(mbpo, args.env, args.set)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    fit_epochs = [int(e) for e in args.fit_epochs.split(",")]
    print(f"machine: {machine()}")
    print(f"{args.env}, {args.seeds} seed(s) under one vmap; G = {config.updates_per_step}, "
          f"batch {config.batch_size}, {config.rollouts_per_step * config.rollout_freq} rollouts "
          f"of length {config.rollout_schedule[3]} every {config.rollout_freq} step(s), fit every "
          f"{config.model_train_freq} steps, model buffer {config.model_buffer_size:,} rows")

    keys = jax.random.split(jax.random.key(0), args.seeds)
    parts = mbpo.make_parts(config)
    start = time.perf_counter()
    state = jax.block_until_ready(jax.jit(jax.vmap(parts.init))(keys))
    print(f"init ({config.initial_random_steps} random steps, compile included): "
          f"{time.perf_counter() - start:.1f} s")
    state = jax.jit(jax.vmap(lambda s: filled(s, max(sizes))))(state)
    per_step = {}

    # enough calls in one scan that the call overhead does not count
    count = 50
    show = lambda name, seconds: print(f"  {name:<30} {1e3 * seconds:9.3f} ms per env step",
                                       flush=True)
    print("\nper env step (all seeds at once):")
    bare = mbpo.make_parts(config.replace(updates_per_step=0))
    real = best_seconds(jax.jit(jax.vmap(steps(offpolicy.env_step(bare), count))), (state, keys),
                        args.repeats) / count
    per_step["real step"] = real
    show("real step", real)
    if "updates" in parts_timed:
        with_updates = best_seconds(jax.jit(jax.vmap(steps(offpolicy.env_step(parts), count))),
                                    (state, keys), args.repeats) / count
        per_step[f"{config.updates_per_step} learner updates"] = with_updates - real
        show(f"{config.updates_per_step} learner updates", with_updates - real)
    _, max_epoch, min_len, max_len = config.rollout_schedule
    branch = {}  # rollout length -> seconds per env step
    if "rollouts" in parts_timed:
        branches = max(1, count // config.rollout_freq)
        # one compile for both lengths
        branch_fn = jax.jit(jax.vmap(steps(parts.branch, branches)))
        for length, at in dict(((min_len, 0), (max_len, max_epoch * config.epoch_length))).items():
            at_step = state.replace(env_steps=jnp.full_like(state.env_steps, at))
            branch[length] = best_seconds(branch_fn, (at_step, keys),
                                          args.repeats) / branches / config.rollout_freq
            show(f"rollouts, length {length}", branch[length])
    learner = parts.learner

    def evaluate(s, k):
        policy = lambda kk, obs: learner.act(s.learner, kk, obs, explore=False)
        return interact.evaluate(parts.env, parts.env_params, policy, k, config.eval_episodes,
                                 interact.spec(parts.env, parts.env_params).max_steps)

    if "eval" in parts_timed:
        evaluation = best_seconds(jax.jit(jax.vmap(evaluate)), (state, keys), args.repeats)
        per_step["evaluation"] = evaluation / config.eval_every
        show(f"evaluation ({evaluation:.2f} s each)", per_step["evaluation"])
    if "fit" not in parts_timed:
        return 0

    def fit_fn(epochs: int):
        """A fit of exactly ``epochs`` epochs, jitted once for every buffer size."""
        fixed = config.replace(model=config.model.replace(max_epochs=epochs, patience=epochs))
        fit = mbpo.make_parts(fixed).fit
        return jax.jit(jax.vmap(lambda s, k: fit(s, k)[0]))

    fit_fns = {epochs: fit_fn(epochs) for epochs in (2, 6)}
    resize = jax.jit(jax.vmap(lambda s, n: s.replace(replay=s.replay.replace(
        size=n, insert=n)), in_axes=(0, None)))

    def fit_seconds(size: int, epochs: int) -> float:
        """One fit of exactly ``epochs`` epochs on an env buffer of ``size`` rows."""
        at_size = resize(state, jnp.int32(size))
        return best_seconds(fit_fns[epochs], (at_size, keys), args.repeats)

    # a fit = a setup over the whole buffer (split, normalisation) + epochs: two fits apart
    print("model fit, per epoch:")
    fit_setup, epoch_seconds = {}, {}
    for size in sizes:
        short, long = fit_seconds(size, 2), fit_seconds(size, 6)
        epoch_seconds[size] = max(long - short, 0.0) / 4
        fit_setup[size] = max(short - 2 * epoch_seconds[size], 0.0)
        print(f"  env buffer {size:>8,}     {1e3 * epoch_seconds[size]:8.1f} ms  (setup per fit "
              f"{1e3 * fit_setup[size]:.1f} ms)", flush=True)
    if set(PARTS) - parts_timed:
        return 0

    total_steps = config.total_steps - config.initial_random_steps
    fit_index = np.arange(total_steps // config.model_train_freq)
    buffer_sizes = config.initial_random_steps + fit_index * config.model_train_freq
    epoch_cost = np.interp(buffer_sizes, sizes, [epoch_seconds[s] for s in sizes])
    setup_cost = np.interp(buffer_sizes, sizes, [fit_setup[s] for s in sizes])
    trained = config.initial_random_steps + np.arange(total_steps)
    lengths = np.asarray(jax.vmap(lambda n: mbpo.rollout_length(config, n))(trained))
    if max_len > min_len:
        per_length = branch[min_len] + (lengths - min_len) / (max_len - min_len) * (
            branch[max_len] - branch[min_len])
    else:
        per_length = np.full(lengths.shape, branch[min_len])
    totals = {name: seconds * total_steps for name, seconds in per_step.items()}
    totals["rollouts"] = float(per_length.sum())
    steady = sum(totals.values())
    print(f"\nprojected whole run, {total_steps:,} trained steps (compile and the random steps "
          "excluded):")
    print(f"  without fits: {steady / 60:.1f} min: "
          + ", ".join(f"{name} {100 * t / steady:.0f}%" for name, t in totals.items()))
    for epochs in fit_epochs:
        fit_total = epochs * epoch_cost.sum() + setup_cost.sum()
        print(f"  fits of {epochs:>3} epochs: +{fit_total / 60:.1f} min, total "
              f"{(steady + fit_total) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
