"""The driver: any algorithm's ``TrainLoop`` for many seeds (and sweep points) at once.

One module per responsibility, the driver knowing no algorithm:

* ``engine``: the chunked engine (``jit(vmap)`` over the batch, chunks, divergence guard,
  checkpoints, exact resume) and ``Options``, the keyword options of ``run`` and ``sweep``;
* ``training``: ``run``, N seeds of one config; ``sweeps``: ``sweep``, a grid of configs x
  seeds in one compile;
* ``devices``: placement over every visible device and across hosts;
* ``evaluation``: trained agents back from a checkpoint;
* ``report``: statistics over seeds, tables, files and plots (atomic writes), progress;
* ``rundir``: run directories (never overwritten by accident, one writer at a time);
* ``logs``: logging backends, ``progress_fn`` callbacks (TensorBoard, W&B: per seed and the
  median / IQM).

``purembrl.run`` re-exports the public functions below, the names the README uses.
"""

from purembrl.driver.devices import init_distributed, is_main_process, shard_batch, to_host
from purembrl.driver.engine import (
    CHECKPOINT,
    Options,
    TooLarge,
    all_diverged,
    batched,
    check_same_run,
    check_seed,
    chunk_length,
    curve_of,
    guarded,
    seed_keys,
)
from purembrl.driver.evaluation import evaluate_checkpoint, load_checkpointed, load_policy
from purembrl.driver.logs import TensorBoard, WandB, combine
from purembrl.driver.report import (
    plot_curve,
    plot_curves,
    quantiles,
    report_nonfinite,
    summary_table,
    sweep_table,
    write_results,
    write_sweep,
)
from purembrl.driver.rundir import check_fresh, prepare_out, remove_results
from purembrl.driver.sweeps import (
    SweepResult,
    static_differences,
    sweep,
    sweep_identity,
    sweepable_fields,
)
from purembrl.driver.training import (
    RunResult,
    check_extension,
    run,
    run_identity,
    stored_config,
)

__all__ = [
    "CHECKPOINT", "Options", "RunResult", "SweepResult", "TensorBoard", "TooLarge", "WandB",
    "all_diverged", "batched", "check_extension", "check_fresh", "combine", "check_same_run",
    "check_seed", "stored_config",
    "chunk_length", "curve_of", "evaluate_checkpoint", "guarded", "init_distributed",
    "is_main_process", "load_checkpointed", "load_policy", "plot_curve", "plot_curves",
    "prepare_out", "quantiles", "remove_results", "report_nonfinite", "run", "run_identity",
    "seed_keys", "shard_batch", "static_differences", "summary_table", "sweep", "sweep_identity",
    "sweep_table", "sweepable_fields", "to_host", "write_results", "write_sweep",
]
