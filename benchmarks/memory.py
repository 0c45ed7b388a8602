"""Memory of an MBPO run against the bytes of its preallocated state, chunk by chunk.

    python benchmarks/memory.py [--seeds 1,8] [--steps 3000] [--chunks 10]

Each seed count runs in a fresh subprocess: MBPO's Pendulum-v1 preset, its state built under
``jit(vmap(init))`` and then advanced chunk by chunk with one compiled chunk function, as the
driver does (checkpoints off). Printed per run: the bytes of the state (every parameter,
optimiser state and preallocated buffer, summed over its arrays), the process's resident memory
(RSS) after importing JAX (the baseline), after ``init`` and after every chunk, and the peak.
What should hold: the growth over the baseline is a bounded multiple of the state (XLA's
working buffers and the compiled program come on top, independent of the run's length) and
RSS does not grow from chunk to chunk. Also printed: RSS after each chunk once glibc's
``malloc_trim(0)`` has returned the allocator's free memory to the system, which tells memory
still in use from memory the allocator merely keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


def trimmed_rss_mb() -> float:
    """RSS after glibc's ``malloc_trim(0)`` (RSS as it is where that is not available)."""
    import ctypes
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_mb()


def child(seeds: int, steps: int, chunks: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from purembrl import run
    from purembrl.algos import mbpo

    baseline = rss_mb()
    config = mbpo.Config.for_env(env="Pendulum-v1", total_steps=steps)
    loop = mbpo.make_loop(config)
    state = jax.jit(jax.vmap(loop.init))(run.seed_keys(0, seeds))
    jax.block_until_ready(state)
    leaves = [jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
              else x for x in jax.tree.leaves(state)]
    state_mb = sum(x.size * x.dtype.itemsize for x in leaves) / 1e6
    after_init = rss_mb()
    length = run.chunk_length(loop.num_iterations, chunks)

    def scan_steps(carry, start, n):
        return jax.lax.scan(loop.step, carry, start + jnp.arange(n, dtype=jnp.int32))

    chunk = jax.jit(jax.vmap(scan_steps, in_axes=(0, None, None)), static_argnums=2)
    per_chunk, trimmed, done = [], [], 0
    while done < loop.num_iterations:
        state, metrics = chunk(state, jnp.int32(done), length)
        np.asarray(metrics["eval_return"])
        done += length
        per_chunk.append(round(rss_mb(), 1))
        trimmed.append(round(trimmed_rss_mb(), 1))
    return {"seeds": seeds, "state_mb": state_mb, "baseline_mb": baseline,
            "after_init_mb": after_init, "per_chunk_mb": per_chunk,
            "per_chunk_trimmed_mb": trimmed, "peak_mb": peak_mb()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,8")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(child(args.child, args.steps, args.chunks)))
        return 0
    from common import machine

    print(f"machine: {machine()}")
    print(f"{'seeds':>5} {'state MB':>9} {'baseline':>9} {'init':>7} {'peak':>7} "
          f"{'growth / state':>15}  RSS after each chunk (MB)")
    for seeds in (int(s) for s in args.seeds.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--child", str(seeds), "--steps",
                               str(args.steps), "--chunks", str(args.chunks)],
                              capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(proc.stderr[-2000:])
            return 1
        r = json.loads(line[len("RESULT "):])
        growth = (r["peak_mb"] - r["baseline_mb"]) / r["state_mb"]
        print(f"{seeds:>5} {r['state_mb']:>9.1f} {r['baseline_mb']:>9.0f} "
              f"{r['after_init_mb']:>7.0f} {r['peak_mb']:>7.0f} {growth:>15.2f}  "
              f"{r['per_chunk_mb']}")
        print(f"{'':>5} after malloc_trim(0): {r['per_chunk_trimmed_mb']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
