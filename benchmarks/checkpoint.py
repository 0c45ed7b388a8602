"""Checkpoint formats for a whole MBPO training state: save and restore time, side by side.

    python benchmarks/checkpoint.py [--seeds 8] [--repeats 3] [--dir /tmp/purembrl-ckpt]

The state is what the driver checkpoints between chunks: MBPO's carry on Pendulum-v1 (preset:
SAC networks and Adam states, the 7-member ensemble and its optimiser, a 100k-transition env
buffer and the model buffer, env states, PRNG keys), ``--seeds`` seeds stacked, with every
buffer slot filled with random data (a full buffer costs the same bytes as an empty one, but
random bytes keep any compression honest). Formats, each writing to and reading from the same
disk, best of ``--repeats``:

* ``purembrl.checkpoint`` (NumPy ``.npz``, uncompressed, SHA-256 over the arrays, atomic
  rename), the format the driver uses;
* ``flax.serialization.to_bytes`` / ``from_bytes`` (msgpack) into one file;
* orbax-checkpoint's ``StandardCheckpointer`` (a directory of tensorstore files), if installed.

Restore times include moving the arrays back to the device. Prints megabytes, seconds and MB/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

from purembrl import checkpoint  # noqa: E402
from purembrl.algos import mbpo  # noqa: E402


def full_state(seeds: int):
    loop = mbpo.make_loop(mbpo.Config.for_env(env="Pendulum-v1"))
    state = jax.jit(jax.vmap(loop.init))(jax.random.split(jax.random.key(0), seeds))

    def fill(i, x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) or x.size < 1000:
            return x
        if jnp.issubdtype(x.dtype, jnp.floating):
            return jax.random.normal(jax.random.key(i), x.shape, x.dtype)
        return x

    leaves, treedef = jax.tree.flatten(state)
    return jax.tree.unflatten(treedef, [fill(i, x) for i, x in enumerate(leaves)])


def nbytes(state) -> int:
    total = 0
    for x in jax.tree.leaves(state):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        total += x.size * x.dtype.itemsize
    return total


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default="/tmp/purembrl-ckpt")
    args = parser.parse_args(argv)
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    print(f"machine: {machine()}")
    state = full_state(args.seeds)
    template = jax.eval_shape(lambda: state)
    size = nbytes(state) / 1e6
    print(f"MBPO Pendulum state, {args.seeds} seeds: {len(jax.tree.leaves(state))} arrays, "
          f"{size:.1f} MB")
    rows = []

    path = os.path.join(args.dir, "state.npz")
    save_s, _ = best(lambda: checkpoint.save(path, state), args.repeats)
    load_s, restored = best(lambda: checkpoint.load(path, template)[0], args.repeats)
    same = all(np.array_equal(np.asarray(jax.random.key_data(a) if jax.dtypes.issubdtype(
        a.dtype, jax.dtypes.prng_key) else a), np.asarray(jax.random.key_data(b) if
        jax.dtypes.issubdtype(b.dtype, jax.dtypes.prng_key) else b))
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True))
    rows.append(("purembrl.checkpoint (.npz + SHA-256)", os.path.getsize(path), save_s, load_s,
                 same))

    from flax import serialization

    keyless = jax.tree.map(lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x, state)
    path = os.path.join(args.dir, "state.msgpack")

    def flax_save():
        with open(path, "wb") as f:
            f.write(serialization.to_bytes(keyless))

    def flax_load():
        with open(path, "rb") as f:
            host = serialization.from_bytes(keyless, f.read())
        return jax.device_put(host)

    save_s, _ = best(flax_save, args.repeats)
    load_s, restored = best(flax_load, args.repeats)
    same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(keyless), jax.tree.leaves(restored), strict=True))
    rows.append(("flax.serialization (msgpack)", os.path.getsize(path), save_s, load_s, same))

    try:
        import orbax.checkpoint as ocp
    except ImportError:
        ocp = None
    if ocp is not None:
        checkpointer = ocp.StandardCheckpointer()
        target = os.path.join(args.dir, "orbax")

        def orbax_save():
            shutil.rmtree(target, ignore_errors=True)
            checkpointer.save(target, keyless)
            checkpointer.wait_until_finished()

        save_s, _ = best(orbax_save, args.repeats)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, keyless)
        load_s, restored = best(lambda: checkpointer.restore(target, abstract), args.repeats)
        same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
                   zip(jax.tree.leaves(keyless), jax.tree.leaves(restored), strict=True))
        disk = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(target)
                   for f in fs)
        rows.append(("orbax StandardCheckpointer", disk, save_s, load_s, same))

    print(f"{'format':<38}{'on disk MB':>11}{'save s':>9}{'MB/s':>8}{'restore s':>11}"
          f"{'MB/s':>8}  exact")
    for name, disk, save_s, load_s, same in rows:
        print(f"{name:<38}{disk / 1e6:>11.1f}{save_s:>9.3f}{size / save_s:>8.0f}"
              f"{load_s:>11.3f}{size / load_s:>8.0f}  {same}")
    shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
