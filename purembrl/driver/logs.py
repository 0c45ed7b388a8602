"""Logging backends: ``progress_fn`` callbacks that write a run's metrics as it trains.

A logger is a callable ``logger(iterations_done, metrics)`` with ``close()``: the ``Logger``
protocol below, brax's ``progress_fn`` convention with the metrics so far as NumPy arrays
``[runs, iterations_done, ...]`` (``purembrl.driver.engine.Options.progress_fn``). Loggers
run on the host between chunks, never inside the jitted run, so they cost the training
nothing but their own writing.

* ``TensorBoard``: event files per run (seed) and one per group of runs with the median and
  the interquartile mean (IQM, Agarwal et al. 2021) over its seeds, every scalar metric at the
  step of the curve's x (``env_steps``). The command line's ``--log tensorboard``. Needs the
  ``log`` extra (``pip install 'purembrl[log]'``: tensorboardX writes, tensorboard reads).
* ``combine(*fns)``: several ``progress_fn`` as one.

Resuming a run appends to its event files without writing a point twice: each writer first
reads the last step it holds (TensorBoard's own reader), and writes only later steps.
"""

from __future__ import annotations

import glob
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

TENSORBOARD_DIR = "tensorboard"


class Logger(Protocol):
    """What every logging backend implements (``progress_fn`` plus ``close``)."""

    def __call__(self, iterations_done: int, metrics: dict[str, np.ndarray]) -> None:
        """Record the metrics so far, ``[runs, iterations_done, ...]`` NumPy arrays."""

    def close(self) -> None:
        """Flush and release the backend's files."""


def combine(*fns: Callable[[int, dict[str, np.ndarray]], None] | None):
    """One ``progress_fn`` calling each of ``fns`` (``None`` skipped) in order; ``None`` when
    none is left."""
    fns = tuple(f for f in fns if f is not None)
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]

    def progress_fn(done: int, metrics: dict[str, np.ndarray]) -> None:
        for fn in fns:
            fn(done, metrics)

    return progress_fn


def iqm(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The interquartile mean: the mean of the middle 50% of ``values`` along ``axis`` (25%
    trimmed from each end, as ``rliable.metrics.aggregate_iqm`` computes it, Agarwal et al.
    2021). Non-finite values are dropped first; NaN where none is left."""
    from scipy import stats

    values = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
    out = np.full(values.shape[1:], np.nan)
    for index in np.ndindex(*values.shape[1:]):
        column = values[(slice(None), *index)]
        column = column[np.isfinite(column)]
        if column.size:
            out[index] = stats.trim_mean(column, 0.25)
    return out


def scalar_metrics(metrics: dict[str, np.ndarray]) -> list[str]:
    """The names of the metrics with one real number per run and iteration, sorted."""
    return sorted(k for k, v in metrics.items()
                  if v.ndim == 2 and np.issubdtype(v.dtype, np.number)
                  and not np.issubdtype(v.dtype, np.complexfloating))


def last_step(directory: str) -> float:
    """The largest step of any scalar in the event files of ``directory`` (``-inf`` if none):
    where a resumed writer continues. Read with TensorBoard's own ``EventAccumulator``; a
    record cut short by a killed process is skipped, as TensorBoard skips it."""
    if not glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        return -math.inf
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        directory, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    steps = [e.step for tag in accumulator.Tags()["scalars"]
             for e in accumulator.Scalars(tag)]
    return max(steps, default=-math.inf)


def read_scalars(directory: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of ``directory`` as ``{tag: [(step, value), ...]}`` in
    the order written (TensorBoard's ``EventAccumulator``): to check what was logged."""
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        directory, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


class TensorBoard:
    """A ``Logger`` writing TensorBoard event files under ``directory``.

    ``directory/<label>/`` per run: every scalar metric (one number per iteration: returns,
    losses, ``nonfinite``) at the step given by the curve's x metric (``env_steps``; the
    iteration count if the run has none). ``directory/<group>/`` per group of runs: the median
    over the group's runs of every scalar metric, and for the curve's y (``eval_return``) also
    ``<y>/iqm``, ``<y>/q25`` and ``<y>/q75``, at the median x. Non-finite values are skipped.

    Args:
      directory: where the event files go (``<out>/tensorboard`` from the command line).
      curve: the learning curve's ``(x, y)`` metric names (``engine.curve_of``).
      labels: a sub-directory per run (default ``seed_0``, ``seed_1``, ...).
      groups: ``{sub-directory: [run indices]}`` aggregated together (default every run in
        ``aggregate``); a sweep has one group per point.

    Raises ``ImportError`` naming the extra when tensorboardX or tensorboard is missing.
    """

    def __init__(self, directory: str, curve: tuple[str, str] = ("env_steps", "eval_return"),
                 labels: Sequence[str] | None = None,
                 groups: dict[str, Sequence[int]] | None = None):
        try:
            import tensorboard  # noqa: F401  (the reader: resume continues after its last step)
            import tensorboardX
        except ImportError as err:
            raise ImportError("TensorBoard logging needs tensorboardX and tensorboard: pip "
                              "install 'purembrl[log]'") from err
        self._writer_cls = tensorboardX.SummaryWriter
        self.directory = directory
        self.curve = tuple(curve)
        self.labels = None if labels is None else list(labels)
        self.groups = None if groups is None else {k: list(v) for k, v in groups.items()}
        self._writers: dict[str, Any] = {}
        self._last: dict[str, float] = {}

    def _writer(self, name: str):
        if name not in self._writers:
            path = os.path.join(self.directory, name)
            self._last[name] = last_step(path)
            # a unique name: a second writer within the same second (a quick resume) must not
            # replace the first one's file, named by the second it started
            self._writers[name] = self._writer_cls(
                logdir=path, flush_secs=10, filename_suffix=f".{os.getpid()}.{time.time_ns()}")
        return self._writers[name]

    def __call__(self, iterations_done: int, metrics: dict[str, np.ndarray]) -> None:
        names = scalar_metrics(metrics)
        if not names:
            return
        runs, iterations = metrics[names[0]].shape
        labels = self.labels or [f"seed_{i}" for i in range(runs)]
        groups = self.groups or {"aggregate": list(range(runs))}
        if len(labels) != runs or any(i >= runs for g in groups.values() for i in g):
            raise ValueError(f"TensorBoard logger: {len(labels)} labels and groups "
                             f"{list(groups)} for metrics of {runs} runs")
        x_name, y_name = self.curve
        x = (metrics[x_name].astype(np.float64) if x_name in metrics
             else np.broadcast_to(np.arange(1, iterations + 1, dtype=np.float64),
                                  (runs, iterations)))
        for r, label in enumerate(labels):
            self._write(label, x[r], {k: metrics[k][r] for k in names if k != x_name})
        for group, members in groups.items():
            with warnings.catch_warnings():  # an all-NaN column (every seed diverged) is NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                values = {f"{k}/median": np.nanmedian(_finite(metrics[k][members]), axis=0)
                          for k in names if k != x_name}
                if y_name in names:
                    y = _finite(metrics[y_name][members])
                    values[f"{y_name}/iqm"] = iqm(y)
                    values[f"{y_name}/q25"] = np.nanpercentile(y, 25, axis=0)
                    values[f"{y_name}/q75"] = np.nanpercentile(y, 75, axis=0)
            self._write(group, np.median(x[members], axis=0), values)
        for writer in self._writers.values():
            writer.flush()

    def _write(self, name: str, steps: np.ndarray, values: dict[str, np.ndarray]) -> None:
        writer = self._writer(name)
        last = self._last[name]
        for i, step in enumerate(steps):
            if not np.isfinite(step) or step <= last:
                continue  # written before (a resumed run), or no step to put it at
            for tag, series in values.items():
                value = float(series[i])
                if math.isfinite(value):
                    writer.add_scalar(tag, value, global_step=int(step))
            last = step
        self._last[name] = last

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)
