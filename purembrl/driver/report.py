"""Reporting shared by ``run`` and ``sweep``: statistics over seeds, the tables, the files
(``metrics.json`` / ``curve.csv`` / ``curve.png``, ``sweep.json`` / ``sweep.csv`` /
``sweep.png``), each written atomically, the progress line and the divergence warnings.

Statistics leave out NaN (runs the divergence guard stopped): median and interquartile range
over the seed axis.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from purembrl.checkpoint import write_atomically
from purembrl.config import as_dict, flat  # noqa: F401  (flat: report.flat, as before)


def quantiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 25th and 75th percentile over the seed axis (axis 0), leaving out NaN (runs the
    divergence guard stopped); NaN where no run is left.

    Without NaN this is one vectorised ``np.percentile`` (the same numbers: ``nanpercentile``
    computes each column by the same linear interpolation, but one column at a time through
    ``apply_along_axis``, which made rewriting a long run's curve after every chunk take 50 ms
    per chunk at 1000 iterations)."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating) or not np.isnan(values).any():
        q25, median, q75 = np.percentile(values, [25, 50, 75], axis=0)
        return median, q25, q75
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        q25, median, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
    return median, q25, q75


def iqm(values: np.ndarray) -> np.ndarray:
    """The interquartile mean over the seed axis (axis 0): the mean of the middle 50% of the
    runs, 25% cut from each end as scipy's ``trim_mean(values, 0.25, axis=0)`` and rliable's
    ``aggregate_iqm`` cut them (Agarwal et al. 2021), leaving out non-finite values (runs the
    divergence guard stopped) column by column; NaN where no run is left."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.isfinite(values)):  # one sort for every column
        ordered = np.sort(values, axis=0)
        cut = int(0.25 * len(values))
        return ordered[cut:len(values) - cut].mean(axis=0)
    out = np.full(values.shape[1:], np.nan)
    for index in np.ndindex(*values.shape[1:]):
        column = values[(slice(None), *index)]
        column = column[np.isfinite(column)]
        if column.size:
            out[index] = iqm(column)
    return out


def bootstrap_interval(values: np.ndarray, statistic=None, reps: int = 2000, seed: int = 0,
                       size: float = 0.95) -> tuple[float, float]:
    """The ``size`` percentile bootstrap interval of ``statistic`` (default ``iqm``) of the
    finite ``values [runs]``: ``reps`` resamples of the runs with replacement, the statistic of
    each, its ``(1 - size) / 2`` and ``(1 + size) / 2`` quantiles. For one task this is
    rliable's stratified bootstrap with its percentile method (Agarwal et al. 2021; a test
    checks the two agree), computed here in one vectorised call, without importing rliable,
    so that every run's table can show it. NaN where fewer than two runs are finite."""
    statistic = iqm if statistic is None else statistic
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    resampled = values[rng.integers(0, len(values), size=(len(values), reps))]
    estimates = statistic(resampled)  # one per resample (column)
    low, high = np.percentile(estimates, [50 * (1 - size), 50 * (1 + size)])
    return float(low), float(high)


def final_stats(values: np.ndarray) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile over seeds of the last evaluation ``[seeds, iters]``
    (NaN-aware, as ``quantiles``)."""
    med, q25, q75 = quantiles(values[:, -1])
    return float(med), float(q25), float(q75)


def columns(metrics: dict[str, np.ndarray], curve: tuple[str, str]) -> list[str]:
    """The metrics the tables report: the curve's y, and ``eval_return`` if another."""
    names = [n for n in (curve[1], "eval_return") if n in metrics]
    return list(dict.fromkeys(names))


def summary_table(metrics: dict[str, np.ndarray], curve: tuple[str, str],
                  max_rows: int = 25) -> str:
    """Median [IQR] over seeds at each evaluation (at most ``max_rows`` rows, last included),
    then the final evaluation's interquartile mean with its 95% bootstrap interval."""
    num_iterations = next(iter(metrics.values())).shape[1]
    rows = sorted(set(np.linspace(0, num_iterations - 1, min(max_rows, num_iterations))
                      .round().astype(int).tolist()))
    names = columns(metrics, curve)
    header = ["iteration"] + (["env_steps"] if "env_steps" in metrics else [])
    header += [f"{n} median [IQR]" for n in names]
    lines = []
    for i in rows:
        line = [str(i + 1)]
        if "env_steps" in metrics:
            line.append(f"{np.median(metrics['env_steps'][:, i]):,.0f}")
        for n in names:
            med, q25, q75 = quantiles(metrics[n][:, i])
            line.append(f"{med:.4g} [{q25:.4g}, {q75:.4g}]")
        lines.append(line)
    widths = [max(len(r[j]) for r in [header, *lines]) for j in range(len(header))]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
    seeds = next(iter(metrics.values())).shape[0]
    final = []
    for n in names:
        low, high = bootstrap_interval(metrics[n][:, -1])
        interval = f" [95% CI {low:.4g}, {high:.4g}]" if np.isfinite(low) else ""
        final.append(f"final {n} IQM {float(iqm(metrics[n][:, -1:])[0]):.4g}{interval}")
    return "\n".join([f"median and interquartile range over {seeds} seeds", fmt(header),
                      *map(fmt, lines), "; ".join(final) + " (interquartile mean, bootstrap "
                      "CI over seeds; comparisons: python -m purembrl compare DIR ...)"])


def sweep_table(result: Any) -> str:
    """One row per point: its fields and the median [IQR] over seeds of the final value of
    the learning curve's y (and of ``eval_return`` if that is another metric)."""
    names = columns(result.metrics, result.curve)
    fields = list(result.points[0])
    header = fields + [f"final {n} median [IQR]" for n in names]
    rows = []
    for i, point in enumerate(result.points):
        row = [f"{point[f]:g}" if isinstance(point[f], float) else str(point[f])
               for f in fields]
        for n in names:
            med, q25, q75 = final_stats(result.metrics[n][i])
            row.append(f"{med:.4g} [{q25:.4g}, {q75:.4g}]")
        rows.append(row)
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
    seeds = next(iter(result.metrics.values())).shape[1]
    return "\n".join([f"{len(result.points)} points x {seeds} seeds; the last evaluation",
                      fmt(header), *map(fmt, rows)])


def write_results(out: str | os.PathLike, algo: ModuleType, config: Any, seed: int,
                  result: Any, plot: bool = True) -> None:
    """``metrics.json``, ``curve.csv`` and (``plot``) ``curve.png`` of a ``RunResult`` in
    ``out``, each written atomically.

    ``metrics.json`` maps each metric name to its nested list ``[num_seeds, num_iterations,
    ...]``; the key ``"_run"`` holds the algorithm, config, seed and wall-clock seconds.
    """
    out = os.fspath(out)
    metrics = result.metrics
    payload = {k: v.tolist() for k, v in metrics.items()}
    payload["_run"] = {
        "algorithm": algo_name(algo), "config": as_dict(config), "seed": seed,
        "num_seeds": next(iter(metrics.values())).shape[0], "seconds": result.seconds,
        "curve": list(result.curve), "complete": result.complete}
    atomic_write(os.path.join(out, "metrics.json"), json.dumps(payload))

    num_iterations = next(iter(metrics.values())).shape[1]
    names = columns(metrics, result.curve)
    header = ["iteration"] + (["env_steps_median"] if "env_steps" in metrics else [])
    for n in names:
        header += [f"{n}_median", f"{n}_q25", f"{n}_q75"]
    stats = {n: quantiles(metrics[n]) for n in names}
    steps = np.median(metrics["env_steps"], axis=0) if "env_steps" in metrics else None
    rows = [",".join(header)]
    for i in range(num_iterations):
        row = [str(i + 1)]
        if steps is not None:
            row.append(f"{steps[i]:g}")
        for n in names:
            row += [f"{s[i]:.6g}" for s in stats[n]]
        rows.append(",".join(row))
    atomic_write(os.path.join(out, "curve.csv"), "\n".join(rows) + "\n")
    if plot:
        plot_curve(os.path.join(out, "curve.png"), metrics, result.curve,
                   title=f"{algo_name(algo)} on {getattr(config, 'env', '?')}")


def write_sweep(out: str | os.PathLike, algo: ModuleType, config: Any, seed: int,
                result: Any, plot: bool = True) -> None:
    """``sweep.json`` (points, every metric ``[points, seeds, iterations, ...]``, the run),
    ``sweep.csv`` (one row per point: fields, final median and quartiles) and (``plot``)
    ``sweep.png`` (median learning curve per point) of a ``SweepResult``, each written
    atomically."""
    out = os.fspath(out)
    payload = {"points": plain(result.points),
               "metrics": {k: v.tolist() for k, v in result.metrics.items()},
               "_run": {"algorithm": algo_name(algo), "base_config": as_dict(config),
                        "seed": seed, "seconds": result.seconds, "curve": list(result.curve),
                        "complete": result.complete}}
    atomic_write(os.path.join(out, "sweep.json"), json.dumps(payload))
    names = columns(result.metrics, result.curve)
    fields = list(result.points[0])
    lines = [",".join(fields + [f"{n}_{s}" for n in names for s in ("median", "q25", "q75")])]
    for i, point in enumerate(result.points):
        stats = [f"{v:.6g}" for n in names for v in final_stats(result.metrics[n][i])]
        lines.append(",".join([str(point[f]) for f in fields] + stats))
    atomic_write(os.path.join(out, "sweep.csv"), "\n".join(lines) + "\n")
    if not plot:
        return
    curves = [(", ".join(f"{k}={v}" for k, v in point.items()),
               {k: v[i] for k, v in result.metrics.items()})
              for i, point in enumerate(result.points)]
    plot_curves(os.path.join(out, "sweep.png"), curves, result.curve,
                title=f"{algo_name(algo)} sweep on {getattr(config, 'env', '?')}")


def plot_curve(path: str, metrics: dict[str, np.ndarray], curve: tuple[str, str],
               title: str = "") -> None:
    """One learning curve: the median over seeds with the interquartile range shaded, and
    beside it the interquartile mean with its 95% bootstrap interval (``bootstrap_interval``
    at each evaluation; Agarwal et al. 2021)."""
    seeds = metrics[curve[1]].shape[0]
    plot_curves(path, [(f"median of {seeds} seeds", metrics)], curve, title,
                band_label="interquartile range", with_iqm=seeds >= 2)


def _iqm_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM and its 95% bootstrap interval at each column of ``values [seeds, points]``."""
    bands = np.array([bootstrap_interval(values[:, j]) for j in range(values.shape[1])])
    return iqm(values), bands[:, 0], bands[:, 1]


def plot_curves(path: str, curves: Sequence[tuple[str, dict[str, np.ndarray]]],
                curve: tuple[str, str], title: str = "", band_label: str | None = None,
                with_iqm: bool = False) -> None:
    """Several learning curves in one PNG, written atomically: for each ``(label, metrics
    [seeds, iterations])`` the median over seeds of ``curve``'s y against the median of its x
    (the evaluation index if x is not a metric), its interquartile range shaded; with
    ``with_iqm`` also the interquartile mean, dashed, with its 95% bootstrap interval hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_name, y_name = curve
    fig, ax = plt.subplots(figsize=(6.5, 4) if len(curves) > 1 else (6, 4))
    for label, metrics in curves:
        y = metrics[y_name]
        x = (np.median(metrics[x_name], axis=0) if x_name in metrics
             else np.arange(1, y.shape[1] + 1))
        med, q25, q75 = quantiles(y)
        ax.plot(x, med, label=label)
        ax.fill_between(x, q25, q75, alpha=0.3 if len(curves) == 1 else 0.15,
                        label=band_label)
        if with_iqm:
            mean, low, high = _iqm_band(np.asarray(y, dtype=np.float64))
            ax.plot(x, mean, "--", color="black", linewidth=1, label="interquartile mean")
            ax.fill_between(x, low, high, facecolor="none", edgecolor="gray", hatch="///",
                            linewidth=0, label="IQM 95% bootstrap CI")
    ax.set(xlabel=x_name.replace("_", " "), ylabel=y_name.replace("_", " "), title=title)
    ax.legend(fontsize=7 if len(curves) > 1 else None)
    fig.tight_layout()
    try:
        write_atomically(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    finally:
        plt.close(fig)


def atomic_write(path: str, text: str) -> None:
    """Write then rename: a crash leaves the old file or the new one, never half of one."""
    write_atomically(path, lambda f: f.write(text), mode="w")


def report_nonfinite(metrics: dict[str, np.ndarray], labels: Sequence[str]) -> list[str]:
    """One line on stderr per run stopped by the divergence guard (``metrics["nonfinite"]``
    ``[runs, iterations]``): where it stopped and what that means. Returns the lines."""
    flags = metrics.get("nonfinite")
    lines = []
    if flags is None:
        return lines
    for label, row in zip(labels, flags, strict=True):
        if row.any():
            first = int(np.argmax(row))
            lines.append(f"warning: {label} stopped at iteration {first + 1}: non-finite "
                         f"parameters, buffers or metrics; its state is the last finite one "
                         f"(iteration {first}), its later metrics are NaN and left out of the "
                         "table's statistics")
    for line in lines:
        print(line, file=sys.stderr)
    return lines


def duration(seconds: float) -> str:
    """``3725`` -> ``"1h02m"``, ``95`` -> ``"1m35s"``, ``7.2`` -> ``"7.2s"``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours / 24:.3g} days"


def progress_parts(done, total, last, curve, eta=None, first=False,
                   steps_per_second=None, elapsed=None) -> list[str]:
    """What the progress shows after a chunk: iteration, env steps (and env steps per second
    over the last chunk), the latest median returns, runs stopped by the guard and, while
    iterations remain, the time left at the last chunk's pace (``eta``; after the first chunk
    an upper bound, since that chunk includes compiling), after the ``elapsed`` seconds when
    given."""
    parts = [f"iteration {done}/{total}"]
    if "env_steps" in last:
        parts.append(f"env steps {np.median(last['env_steps'][:, -1]):,.0f}")
    if steps_per_second is not None:
        parts.append(f"{steps_per_second:,.0f} steps/s")
    for name in dict.fromkeys(("eval_return", curve[1])):
        if name in last:
            parts.append(f"median {name} {quantiles(last[name][:, -1])[0]:.4g}")
    if "nonfinite" in last and last["nonfinite"][:, -1].any():
        parts.append(f"{int(last['nonfinite'][:, -1].sum())} stopped (non-finite)")
    if elapsed is not None:
        parts.append(f"{elapsed:.1f}s")
    if eta is not None and done < total:
        parts.append(f"about {duration(eta)} left" + (" (at most: the first chunk compiled)"
                                                      if first else ""))
    return parts


def progress_line(label, done, total, last, curve, elapsed, eta=None, first=False,
                  steps_per_second=None):
    """One progress line on stderr after a chunk (``progress_parts`` and the elapsed
    seconds): a carriage return on a terminal, a new line elsewhere (a log file, CI)."""
    parts = [label, *progress_parts(done, total, last, curve, eta, first, steps_per_second,
                                    elapsed)]
    end = "\r" if sys.stderr.isatty() else "\n"
    print(" | ".join(parts), end=end, file=sys.stderr, flush=True)


class ProgressDisplay:
    """The progress of a run after each chunk: on a terminal a rich progress bar (label, bar,
    iterations, elapsed time, then ``progress_parts``: env steps, steps per second, median
    return, time left), on anything else (a log file, CI) one plain line per chunk
    (``progress_line``). It is drawn on the host between chunks, never inside the jitted run
    (``benchmarks/progress_cost.py`` measures the difference). ``console``: a
    ``rich.console.Console`` to draw on (default: a bar on stderr if it is a terminal)."""

    def __init__(self, label: str, total: int, console: Any = None):
        self.label, self.total, self.bar = label, total, None
        if console is None and not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[info]}", markup=False),
                            console=console or Console(stderr=True), refresh_per_second=1)
        self.task = self.bar.add_task(label, total=total, info="compiling, then the first chunk")
        self.bar.start()

    def update(self, done, last, curve, elapsed, eta=None, first=False,
               steps_per_second=None) -> None:
        if self.bar is None:
            progress_line(self.label, done, self.total, last, curve, elapsed, eta, first,
                          steps_per_second)
            return
        info = " | ".join(progress_parts(done, self.total, last, curve, eta, first,
                                         steps_per_second)[1:])
        self.bar.update(self.task, completed=done, info=info)
        self.bar.refresh()

    def close(self) -> None:
        """Leave the bar as it stands (or end the carriage-returned line)."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        elif sys.stderr.isatty():
            print(file=sys.stderr)


def plain(value: Any) -> Any:
    """JSON's view of a value (tuples become lists), so saved and new configs compare."""
    return json.loads(json.dumps(value))


def algo_name(algo) -> str:
    """The registry name of an algorithm module (``purembrl.algos.mbpo`` -> ``mbpo``; a
    registered module's registered name)."""
    from purembrl import algos

    return algos.name_of(algo)
