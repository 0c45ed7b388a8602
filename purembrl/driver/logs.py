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
* ``WandB``: one Weights & Biases run per seed and one for each group's median / IQM, grouped
  by experiment (``WANDB_MODE=offline`` works without a network; ``wandb sync`` uploads
  later). The command line's ``--log wandb``. Needs ``pip install wandb``.
* ``combine(*fns)``: several ``progress_fn`` as one.

Resuming a run continues its logs without writing a point twice: a TensorBoard writer first
reads the last step of each tag it holds (TensorBoard's own reader); W&B runs keep their ids
(stored in ``wandb/purembrl.json`` with the last step logged), so a resumed run continues the
same runs.
"""

from __future__ import annotations

import glob
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from purembrl.driver.report import iqm, quantiles

TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"


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


def scalar_metrics(metrics: dict[str, np.ndarray]) -> list[str]:
    """The names of the metrics with one real number per run and iteration, sorted."""
    return sorted(k for k, v in metrics.items()
                  if v.ndim == 2 and np.issubdtype(v.dtype, np.number)
                  and not np.issubdtype(v.dtype, np.complexfloating))


def last_steps(directory: str) -> dict[str, float]:
    """The last step of each scalar tag in the event files of ``directory`` (``{}`` if none):
    where a resumed writer continues, tag by tag (``read_scalars``). Per tag, because a killed
    process may leave an iteration with some of its tags on disk and others not (the writer's
    queue is drained in the background); a record cut short is skipped, as TensorBoard skips
    it."""
    if not glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        return {}
    return {tag: max(step for step, _ in points)
            for tag, points in read_scalars(directory).items() if points}


def read_scalars(directory: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of ``directory`` as ``{tag: [(step, value), ...]}`` in
    the order written (TensorBoard's ``EventAccumulator``): to check what was logged."""
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        directory, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def series(metrics: dict[str, np.ndarray], curve: tuple[str, str], labels, groups):
    """What a logger writes: ``[(name, steps, {tag: values})]``, one entry per run (every
    scalar metric but the curve's x) and per group (the median of each over the group's runs;
    for the curve's y also ``<y>/iqm``, ``<y>/q25``, ``<y>/q75``), the steps being the curve's
    x (the group's median x; the iteration count if the run has no such metric). Default
    labels ``seed_<i>``, default group ``aggregate`` (every run)."""
    names = scalar_metrics(metrics)
    if not names:
        return []
    runs, iterations = metrics[names[0]].shape
    labels = list(labels) if labels is not None else [f"seed_{i}" for i in range(runs)]
    groups = ({k: list(v) for k, v in groups.items()} if groups is not None
              else {"aggregate": list(range(runs))})
    if len(labels) != runs or any(i >= runs for g in groups.values() for i in g):
        raise ValueError(f"logger: {len(labels)} labels and groups {list(groups)} for metrics "
                         f"of {runs} runs")
    x_name, y_name = curve
    x = (metrics[x_name].astype(np.float64) if x_name in metrics
         else np.broadcast_to(np.arange(1, iterations + 1, dtype=np.float64),
                              (runs, iterations)))
    out = [(label, x[r], {k: metrics[k][r] for k in names if k != x_name})
           for r, label in enumerate(labels)]
    for group, members in groups.items():
        values = {f"{k}/median": quantiles(_finite(metrics[k][members]))[0]
                  for k in names if k != x_name}
        if y_name in names:
            y = _finite(metrics[y_name][members])
            _, q25, q75 = quantiles(y)
            values.update({f"{y_name}/iqm": iqm(y), f"{y_name}/q25": q25,
                           f"{y_name}/q75": q75})
        out.append((group, np.median(x[members], axis=0), values))
    return out


def new_points(steps: np.ndarray, values: dict[str, np.ndarray], last: dict[str, float]):
    """``[(step, {tag: value})]`` for each iteration's values at a finite step after the last
    step already written of their tag (``last``; a resumed run), non-finite values left out,
    and the updated ``last``."""
    last, points = dict(last), []
    for i, step in enumerate(steps):
        if not np.isfinite(step):
            continue  # no step to put it at
        row = {tag: float(v[i]) for tag, v in values.items()
               if step > last.get(tag, -math.inf) and math.isfinite(float(v[i]))}
        if row:
            points.append((int(step), row))
            last.update(dict.fromkeys(row, float(step)))
    return points, last


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
        self._last: dict[str, dict[str, float]] = {}  # per writer, per tag

    def _writer(self, name: str):
        if name not in self._writers:
            path = os.path.join(self.directory, name)
            self._last[name] = last_steps(path)
            # a unique name: a second writer within the same second (a quick resume) must not
            # replace the first one's file, named by the second it started
            self._writers[name] = self._writer_cls(
                logdir=path, flush_secs=10, filename_suffix=f".{os.getpid()}.{time.time_ns()}")
        return self._writers[name]

    def __call__(self, iterations_done: int, metrics: dict[str, np.ndarray]) -> None:
        for name, steps, values in series(metrics, self.curve, self.labels, self.groups):
            writer = self._writer(name)
            points, self._last[name] = new_points(steps, values, self._last[name])
            for step, row in points:
                for tag, value in row.items():
                    writer.add_scalar(tag, value, global_step=step)
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class WandB:
    """A ``Logger`` sending the same series as ``TensorBoard`` to Weights & Biases: one W&B run
    per run (seed) and one per group (median, IQM, quartiles), all in the W&B group
    ``group`` (a sweep point's runs in ``<group>/<point>``), each point at the curve's x as
    the W&B step. Files go to ``directory/wandb`` (W&B's layout); set ``WANDB_MODE=offline``
    to log without a network and ``wandb sync directory/wandb/offline-run-*`` later.

    The runs' ids and the last step each logged are kept in ``directory/wandb/purembrl.json``,
    so a logger made again on the same directory (a resumed run) continues the same W&B runs
    after their last step.

    Args:
      directory: the run directory (``wandb.init(dir=directory)``).
      curve, labels, groups: as ``TensorBoard``'s; a group name ``<point>/aggregate`` puts
        the runs labelled ``<point>/...`` in the W&B group ``<group>/<point>``.
      group: the experiment's name (the run directory's name from the command line).
      config: the config stored with each W&B run: a dict, or a function of the run's name
        giving it (a sweep's points differ).
      project: the W&B project (default ``$WANDB_PROJECT`` or ``purembrl``).

    Raises ``ImportError`` naming the package when wandb is missing.
    """

    def __init__(self, directory: str, curve: tuple[str, str] = ("env_steps", "eval_return"),
                 labels: Sequence[str] | None = None,
                 groups: dict[str, Sequence[int]] | None = None, *, group: str = "purembrl",
                 config: dict[str, Any] | Callable[[str], dict] | None = None,
                 project: str | None = None):
        try:
            import wandb
        except ImportError as err:
            raise ImportError("W&B logging needs wandb: pip install wandb") from err
        self._wandb = wandb
        self.directory = directory
        self.curve = tuple(curve)
        self.labels = None if labels is None else list(labels)
        self.groups = None if groups is None else {k: list(v) for k, v in groups.items()}
        self.group = group
        self.config = config
        self.project = project or os.environ.get("WANDB_PROJECT", "purembrl")
        self._state_path = os.path.join(directory, WANDB_DIR, "purembrl.json")
        self._state = {"ids": {}, "last": {}}
        if os.path.isfile(self._state_path):
            import json

            with open(self._state_path) as f:
                self._state = json.load(f)
        self._runs: dict[str, Any] = {}

    def _run(self, name: str):
        if name not in self._runs:
            os.makedirs(os.path.join(self.directory, WANDB_DIR), exist_ok=True)
            run_id = self._state["ids"].setdefault(  # W&B ids: letters, digits, - and _
                name, secrets.token_hex(4) + "-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)[-40:])
            point = name.rpartition("/")[0]
            aggregate = name in (self.groups or {"aggregate": ()})
            self._runs[name] = self._wandb.init(
                project=self.project, dir=self.directory, id=run_id, resume="allow",
                reinit="create_new", name=name,
                config=self.config(name) if callable(self.config) else self.config,
                group=f"{self.group}/{point}" if point else self.group,
                job_type="aggregate" if aggregate else "seed")
        return self._runs[name]

    def __call__(self, iterations_done: int, metrics: dict[str, np.ndarray]) -> None:
        for name, steps, values in series(metrics, self.curve, self.labels, self.groups):
            last = self._state["last"].get(name, -math.inf)  # W&B logs a whole row at once
            points, _ = new_points(steps, values, dict.fromkeys(values, last))
            self._state["last"][name] = max([last, *(step for step, _ in points)])
            run = self._run(name)
            for step, row in points:
                run.log({self.curve[0]: step, **row}, step=step)
        self._save_state()

    def _save_state(self) -> None:
        import json

        from purembrl.driver.report import atomic_write

        os.makedirs(os.path.dirname(self._state_path), exist_ok=True)
        state = {"ids": self._state["ids"],
                 "last": {k: v for k, v in self._state["last"].items() if math.isfinite(v)}}
        atomic_write(self._state_path, json.dumps(state, indent=1))

    def close(self) -> None:
        """Finish every W&B run. W&B's service writes the files out after ``finish`` returns
        (at the latest when the process exits), so sync them once the process has ended."""
        for run in self._runs.values():
            run.finish()
        self._runs.clear()


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)
