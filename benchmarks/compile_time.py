"""Compile time of every algorithm's training program, as the driver builds it (issue 24).

For each algorithm at its default env and preset (what ``python -m purembrl train ALGO``
runs), ``--seeds`` seeds, the driver's two programs (``init`` and one chunk of
``scan_steps``, ``purembrl.driver.engine``) are traced, lowered and compiled, timed apart; then
two chunks of one iteration run and the second (compile-free) is timed. Each algorithm runs
in a fresh subprocess per setting, and the table says whether a setting's metrics equal the
first one's bit for bit. The settings:

* ``default``: XLA's default flags, as ``python -m purembrl train`` runs;
* ``O1``: ``XLA_FLAGS=--xla_backend_optimization_level=1`` (LLVM's lighter optimisation; its
  numbers differ from the default's in the last bits, which training then grows);
* ``split1`` ... ``split8``: XLA's parallel code generation;
* ``rbg``, ``unsafe_rbg``: JAX's other PRNG key implementations (``JAX_DEFAULT_PRNG_IMPL``;
  other random numbers, so other runs).

    python benchmarks/compile_time.py [--algos mbpo,sac] [--seeds 1] [--settings default,O1]

Numbers go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(algo_name: str, num_seeds: int) -> dict:
    """One algorithm in this process: seconds to trace+lower and to compile each program,
    the second chunk's run seconds, and the metrics of both chunks."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from purembrl import algos
    from purembrl.driver import engine

    algo = algos.get(algo_name)
    config = algo.Config.for_env()
    loop = algo.make_loop(config)
    init, scan_steps = engine.guarded(loop.init, loop.step)
    init = jax.jit(engine.batched(init))
    run_chunk = jax.jit(engine.batched(scan_steps, in_axes=(0, None, None)), static_argnums=2)
    keys = engine.seed_keys(0, num_seeds)
    out = {"algo": algo_name, "env": getattr(config, "env", "-")}

    start = time.perf_counter()
    lowered = init.trace(keys).lower()
    middle = time.perf_counter()
    compiled = lowered.compile()
    out["init_lower"], out["init_compile"] = middle - start, time.perf_counter() - middle
    carry = jax.block_until_ready(compiled(keys))

    start = time.perf_counter()
    lowered = run_chunk.trace(carry, jnp.int32(0), 1).lower()
    middle = time.perf_counter()
    compiled = lowered.compile()
    out["step_lower"], out["step_compile"] = middle - start, time.perf_counter() - middle
    out["step_kernels"] = compiled.as_text().count(" fusion(")  # XLA's fused kernels
    metrics = []
    for i in range(min(2, loop.num_iterations)):
        start = time.perf_counter()
        carry, m = compiled(carry, jnp.int32(i))
        metrics.append(jax.tree.map(np.asarray, m))
        out["chunk_run"] = time.perf_counter() - start
    out["metrics"] = {k: np.concatenate([m[k] for m in metrics], 1).tolist() for k in metrics[0]}
    return out


SETTINGS = {"default": {}, "O1": {"XLA_FLAGS": "--xla_backend_optimization_level=1"},
            # XLA's CPU code generation split into this many parts compiled in parallel
            **{f"split{k}": {"XLA_FLAGS": f"--xla_cpu_parallel_codegen_split_count={k}"}
               for k in (1, 2, 4, 8)},
            # JAX's other key implementations (every random number changes): "rbg" draws bits
            # with XLA's RngBitGenerator but still splits keys by Threefry; "unsafe_rbg" also
            # splits with it (no guarantee that split streams are independent)
            "rbg": {"JAX_DEFAULT_PRNG_IMPL": "rbg"},
            "unsafe_rbg": {"JAX_DEFAULT_PRNG_IMPL": "unsafe_rbg"}}


def child(algo_name: str, num_seeds: int, setting: str) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           **SETTINGS[setting]}
    out = subprocess.run([sys.executable, __file__, "--child", algo_name, "--seeds",
                          str(num_seeds)], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{algo_name} ({setting}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default=None, help="comma-separated (default: all)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--settings", default="default,O1",
                        help=f"comma-separated, the first the reference: {', '.join(SETTINGS)}")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.seeds)))
        return

    from purembrl import algos

    names = args.algos.split(",") if args.algos else list(algos.ALGORITHMS)
    settings = args.settings.split(",")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        parser.error(f"--settings {','.join(unknown)} is invalid: allowed {', '.join(SETTINGS)}")
    import jax
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__}; {args.seeds} seed(s); seconds (trace+lower, compile, the "
          "second chunk's run), the step program's fused kernels; 'same': metrics equal the "
          "first setting's bit for bit")
    head = f"{'algorithm':<20} {'env':<22}"
    for setting in settings:
        head += f" | {setting + ': lower':>15} {'compile':>8} {'run':>7} {'kernels':>7}"
        head += f" {'same':>5}" if setting != settings[0] else ""
    print(head)
    for name in names:
        rows = [child(name, args.seeds, setting) for setting in settings]
        line = f"{name:<20} {rows[0]['env']:<22}"
        for i, row in enumerate(rows):
            line += (f" | {row['init_lower'] + row['step_lower']:>15.2f} "
                     f"{row['init_compile'] + row['step_compile']:>8.2f} {row['chunk_run']:>7.3f}"
                     f" {row['step_kernels']:>7}")
            if i:
                line += f" {'yes' if row['metrics'] == rows[0]['metrics'] else 'no':>5}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
