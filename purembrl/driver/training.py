"""``run``: N seeds of one algorithm and config, through the chunked engine, with results.

The driver knows no algorithm: it reads only the metric names of the design contract
(``env_steps``, ``eval_return``) and, if the module defines it, ``curve(config) -> (x, y)``
naming the learning curve to plot (default ``("env_steps", "eval_return")``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from purembrl.config import as_dict
from purembrl.driver import engine, report
from purembrl.driver.devices import is_main_process


@dataclass
class RunResult:
    """What a run returns: final states (leading seed axis) and metrics as NumPy arrays
    ``[num_seeds, num_iterations, ...]``, plus the wall-clock seconds it took."""

    state: Any
    metrics: dict[str, np.ndarray]
    seconds: float
    curve: tuple[str, str]
    complete: bool = True


def run(algo: ModuleType, config: Any, num_seeds: int = 1, *, seed: int = 0,
        **options: Any) -> RunResult:
    """Train ``num_seeds`` seeds of ``algo`` (a module with ``make_loop(config)``) with
    ``config`` under one ``jit(vmap(...))``, in chunks; print the final table (median and
    interquartile range over seeds at each evaluation) and, given ``out``, write
    ``metrics.json``, ``curve.csv``, ``curve.png`` and the checkpoint.

    ``options``: the keyword options of ``purembrl.driver.engine.Options`` (``out``,
    ``num_chunks``, ``progress``, ``table``, ``checkpoint``, ``resume``,
    ``stop_after_chunks``, ``progress_fn``); with ``out`` the result files are rewritten after
    every chunk."""
    opts = engine.Options(**options)
    curve = engine.curve_of(algo, config)
    if opts.out is not None:  # the results so far after every chunk, then the user's callback
        opts = dataclasses.replace(opts, progress_fn=partial_writer(
            opts, lambda metrics, seconds: report.write_results(
                opts.out, algo, config, seed, RunResult(None, metrics, seconds, curve, False),
                plot=False)))
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds} is invalid: allowed an integer >= 1")
    loop = algo.make_loop(config)
    episodes = engine.episode_loop(algo, config)
    init, scan_steps = engine.guarded(loop.init, loop.step)
    batch = engine.Batch(
        label=f"[{report.algo_name(algo)}] seeds {num_seeds}", init=engine.batched(init),
        scan_steps=engine.batched(scan_steps, in_axes=(0, None, None)),
        inputs=(engine.seed_keys(seed, num_seeds),), num_iterations=loop.num_iterations,
        identity=run_identity(algo, config, seed, num_seeds), curve=curve,
        resumes=extended_identity(algo, config, seed, num_seeds, opts) if opts.extend else None,
        whole=None if episodes is None else engine.pooled(episodes))
    with engine.writing(opts):  # one writer per run directory
        carry, metrics, seconds, done = engine.drive(batch, opts)
        result = RunResult(state=carry[0], metrics=metrics, seconds=seconds, curve=curve,
                           complete=done == loop.num_iterations)
        if is_main_process():
            report.report_nonfinite(metrics, [f"seed {i}" for i in range(num_seeds)])
            if opts.table:
                print(report.summary_table(metrics, curve))
            if opts.out is not None:
                report.write_results(opts.out, algo, config, seed, result)
    return result


def partial_writer(opts: engine.Options, write: Any):
    """The ``progress_fn`` that calls ``write(metrics so far, seconds)`` (atomic rewrites of
    the run's result files, marked incomplete) after each chunk, then the user's own
    ``opts.progress_fn``. Its seconds count from this call (compiling included)."""
    start = time.perf_counter()
    user = opts.progress_fn

    def progress_fn(done: int, metrics: dict[str, np.ndarray]) -> None:
        write(metrics, time.perf_counter() - start)
        if user is not None:
            user(done, metrics)

    return progress_fn


def stored_config(algo: ModuleType, out: Any) -> Any:
    """The config stored in ``out``'s checkpoint (``CheckpointError`` if it cannot be read)."""
    import os

    from purembrl import checkpoint
    from purembrl.config import from_dict

    meta = checkpoint.read_meta(os.path.join(os.fspath(out), engine.CHECKPOINT))
    return from_dict(algo.Config, meta["config"])


def check_extension(algo: ModuleType, config: Any, shorter: Any) -> None:
    """``ValueError`` unless ``config`` may continue a run of ``shorter`` (the same run with a
    smaller budget; the config class's ``check_extension`` decides, and an algorithm whose
    config has none cannot be extended)."""
    if not hasattr(config, "check_extension"):
        raise ValueError(f"a {report.algo_name(algo)} run cannot be continued with another "
                         "config (its Config has no check_extension)")
    config.check_extension(shorter)


def extended_identity(algo: ModuleType, config: Any, seed: int, num_seeds: int,
                      opts: engine.Options) -> dict[str, Any]:
    """For ``extend``: the identity the checkpoint holds, once ``config`` has been checked to
    continue its run exactly (``check_extension``)."""
    shorter = stored_config(algo, opts.out)
    check_extension(algo, config, shorter)
    return run_identity(algo, shorter, seed, num_seeds)


def run_identity(algo: ModuleType, config: Any, seed: int, num_seeds: int) -> dict[str, Any]:
    """What makes two runs the same run (stored in checkpoints, compared on resume)."""
    return {"algorithm": report.algo_name(algo), "config": report.plain(as_dict(config)),
            "seed": seed, "num_seeds": num_seeds}
