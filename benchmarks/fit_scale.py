"""The ensemble fit at a long run's buffer sizes: milliseconds per epoch by env-buffer size and
``sgd_block``, several seeds under one ``jit(vmap)`` (issue 24; the fit part of issue 21's
Hopper projection).

    python benchmarks/fit_scale.py [--sizes 5000,65000,125000] [--seeds 4] [--blocks 1,16,64]
                                   [--obs-dim 11] [--act-dim 3] [--repeats 3]

An MBPO run refits its ensemble every 250 env steps on the whole env buffer, so a fit's epoch
grows with the run: at Hopper's 125k steps one epoch is about 390 minibatch steps per member.
Timed here, compile excluded (best of ``--repeats`` calls), with the paper's ensemble (7 x 4 x
200 swish, batch 256 per member, ``dynamics.EnsembleConfig``'s defaults) on rows of Hopper's
sizes (11-dim observations, 3-dim actions) drawn at random (a fit's cost depends on how many
rows there are, not on their values):

* ``dynamics.fit_data`` (the split and the normalisation over the whole buffer; once per fit);
* ``dynamics.fit_epoch`` (one pass of minibatch Adam steps over the training rows, the holdout
  score and the early-stopping bookkeeping), for each ``sgd_block`` in ``--blocks``: its
  minibatch loop is a ``while`` loop whose every iteration, on a GPU, waits for the host to
  read the loop's condition; a block of steps waits once.

One compile per block serves every size (the size is a traced value; the buffer's capacity is
the largest size). XLA's command buffers (CUDA graphs over loops and conditionals) are a
process-wide flag: run the script a second time under ``XLA_FLAGS`` to compare them; the header
prints the flags in force. Printed per size: the rows, minibatch steps per epoch, the setup and
each block's epoch in ms, and the epoch's GFLOP/s (3x the forward FLOPs per training row, the
holdout's forward passes once). Numbers go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402
from mbpo_profile import best_seconds  # noqa: E402
from mbpo_speed import mlp_macs  # noqa: E402

from purembrl import buffer, dynamics  # noqa: E402
from purembrl.types import Transition  # noqa: E402


def random_buffer(key: jax.Array, rows: int, obs_dim: int, act_dim: int) -> buffer.BufferState:
    """A full buffer of ``rows`` random transitions (Gaussian observations, uniform actions)."""
    k = jax.random.split(key, 4)
    data = Transition(obs=jax.random.normal(k[0], (rows, obs_dim)),
                      action=jax.random.uniform(k[1], (rows, act_dim), minval=-1, maxval=1),
                      reward=jax.random.normal(k[2], (rows,)),
                      next_obs=jax.random.normal(k[3], (rows, obs_dim)),
                      terminated=jnp.zeros((rows,), bool))
    return buffer.add(buffer.init(jax.tree.map(lambda v: v[0], data), rows), data)


def epoch_flops(config: dynamics.EnsembleConfig, obs_dim: int, act_dim: int, num_train: int,
                num_holdout: int) -> float:
    """FLOPs of one epoch: every training step 3x its forward pass, the holdout forward once."""
    target = obs_dim + int(config.learn_reward)
    macs = mlp_macs([obs_dim + act_dim, *config.hidden_sizes,
                     2 * target + int(config.learn_termination)])
    steps = -(-num_train // config.batch_size)
    E = config.num_members
    return 2 * macs * E * (3 * steps * config.batch_size + num_holdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,65000,125000",
                        help="env-buffer sizes (rows) at which to time a fit's setup and epoch")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--blocks", default="1,16,64", help="sgd_block values to time")
    parser.add_argument("--obs-dim", type=int, default=11)
    parser.add_argument("--act-dim", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    blocks = [int(b) for b in args.blocks.split(",")]
    if min(sizes) < 2 or args.seeds < 1 or min(blocks) < 1:
        parser.error("--sizes need >= 2 rows, --seeds and --blocks >= 1")

    print(f"machine: {machine()}")
    print(f"XLA_FLAGS: {os.environ.get('XLA_FLAGS', '(none)')}")
    base = dynamics.EnsembleConfig()
    print(f"ensemble {base.num_members} x {len(base.hidden_sizes)} x {base.hidden_sizes[0]}, "
          f"batch {base.batch_size} per member; obs {args.obs_dim}, action {args.act_dim}; "
          f"{args.seeds} seed(s) under one vmap; compile excluded, best of {args.repeats}",
          flush=True)

    keys = jax.random.split(jax.random.key(0), args.seeds)
    capacity = max(sizes)
    states = jax.vmap(lambda k: dynamics.init(k, base, args.obs_dim, args.act_dim))(keys)
    buffers = jax.jit(jax.vmap(lambda k: random_buffer(k, capacity, args.obs_dim,
                                                       args.act_dim)))(keys)
    at_size = jax.jit(jax.vmap(lambda b, n: b.replace(size=n, insert=n % capacity),
                               in_axes=(0, None)))

    def setup(state, replay, key):
        k1, k2 = jax.random.split(key)
        return dynamics.fit_data(state, replay, k1, k2, base)

    setup_fn = jax.jit(jax.vmap(setup))

    carries = jax.vmap(dynamics.fit_start)(states, keys)
    epoch_fns = {}
    for block in blocks:
        config = base.replace(sgd_block=block)
        epoch_fns[block] = jax.jit(jax.vmap(
            lambda s, d, c, config=config: dynamics.fit_epoch(s, config, d, c)))

    header = f"{'rows':>8} {'steps/epoch':>11} {'setup ms':>9} " + " ".join(
        f"{f'block {b} ms':>12}" for b in blocks) + "   GFLOP/s (best block)"
    print(header, flush=True)
    for size in sizes:
        replay = at_size(buffers, jnp.int32(size))
        data = setup_fn(states, replay, keys)
        setup_s = best_seconds(setup_fn, (states, replay, keys), args.repeats)
        num_train, num_holdout = int(data.num_train[0]), int(data.num_holdout[0])
        times = {b: best_seconds(fn, (states, data, carries), args.repeats)
                 for b, fn in epoch_fns.items()}
        best = min(times.values())
        flops = args.seeds * epoch_flops(base, args.obs_dim, args.act_dim, num_train,
                                         num_holdout)
        print(f"{size:>8,} {-(-num_train // base.batch_size):>11} {1e3 * setup_s:>9.1f} "
              + " ".join(f"{1e3 * times[b]:>12.1f}" for b in blocks)
              + f"   {flops / best / 1e9:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
