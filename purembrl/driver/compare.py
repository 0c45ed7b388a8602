"""``compare``: runs and sweep points side by side with the statistics the field reports.

Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the Statistical Precipice":
with a handful of seeds, report the interquartile mean (IQM: the mean of the middle 50% of
runs, robust to outliers yet using half the runs, unlike the median) with 95% stratified
bootstrap confidence intervals, and the probability of improvement P(X > Y) (the chance that a
run of X beats a run of Y) with its interval. Computed by their library, rliable (the
``stats`` extra: ``pip install 'purembrl[stats]'``).

``python -m purembrl compare DIR [DIR ...]`` reads each run directory's ``metrics.json`` (or a
sweep's ``sweep.json``, one entry per point), prints the table of final scores and every
pairwise probability of improvement, and with ``--plot FILE`` draws the IQM learning curves
with their 95% bands. A run's final score is its curve's y (``eval_return``) at its last
evaluation, per seed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from purembrl.driver.report import iqm, write_atomically


@dataclass
class Entry:
    """One thing compared: a run, or one point of a sweep. ``y`` is ``[seeds, evaluations]``
    of the curve's y metric, ``x`` the median over seeds of its x (the evaluation index if
    the run has no such metric)."""

    name: str
    curve: tuple[str, str]
    x: np.ndarray
    y: np.ndarray
    complete: bool


def load(directory: str) -> list[Entry]:
    """The entries of a run directory (one) or a sweep directory (one per point), from the
    results files every run writes. ``ValueError`` naming the directory when it has none."""
    name = os.path.basename(os.path.normpath(directory))
    for filename in ("metrics.json", "sweep.json"):
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            break
    else:
        raise ValueError(f"{directory}: no metrics.json or sweep.json (not a run directory)")
    try:
        with open(path) as f:
            data = json.load(f)
        run = data["_run"]
        curve = tuple(run["curve"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a purembrl results file ({err})") from None
    complete = bool(run.get("complete", True))
    metrics = data["metrics"] if filename == "sweep.json" else data
    if curve[1] not in metrics:
        raise ValueError(f"{path}: has no {curve[1]!r} metric")
    y_all = np.asarray(metrics[curve[1]], dtype=np.float64)
    x_all = np.asarray(metrics[curve[0]], dtype=np.float64) if curve[0] in metrics else None
    if filename == "metrics.json":
        return [_entry(name, curve, x_all, y_all, complete)]
    return [_entry(f"{name}:" + ",".join(f"{k}={v}" for k, v in point.items()), curve,
                   None if x_all is None else x_all[i], y_all[i], complete)
            for i, point in enumerate(data["points"])]


def _entry(name, curve, x, y, complete) -> Entry:
    if y.ndim != 2:
        raise ValueError(f"{name}: {curve[1]} is not one number per seed and evaluation")
    x = np.median(x, axis=0) if x is not None else np.arange(1, y.shape[1] + 1.0)
    return Entry(name, curve, x, y, complete)


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as err:
        raise ImportError("compare needs rliable: pip install 'purembrl[stats]'") from err
    return library, metrics


def final_scores(entry: Entry) -> np.ndarray:
    """Each seed's score at the last evaluation, ``[seeds]`` (NaN for a diverged seed)."""
    return entry.y[:, -1]


def interval_estimates(scores: dict[str, np.ndarray], reps: int = 2000, seed: int = 0,
                       which: Sequence[str] = ("median", "iqm", "mean")):
    """``{name: {aggregate: (point, low, high)}}``: each aggregate (``which`` of ``median``,
    ``iqm``, ``mean``) over the seeds of the ``[seeds]`` or ``[seeds, points]`` scores (per
    point) with its 95% stratified bootstrap interval (rliable's ``get_interval_estimates``,
    percentile method, ``reps`` resamples of the seeds). The IQM is rliable's
    ``aggregate_iqm`` (scipy's 25% ``trim_mean``) taken per column (``report.iqm``, in NumPy:
    scipy's call costs 2 ms a resample); the median and mean are
    over seeds (rliable's ``aggregate_median`` / ``_mean`` are over tasks of per-task means,
    and here there is one task). Seeds with a non-finite score are dropped first; an entry
    with fewer than two left is refused."""
    library, _ = _rliable()
    clean = {}
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float64)
        values = values.reshape(len(values), -1)
        values = values[np.all(np.isfinite(values), axis=1)]
        if len(values) < 2:
            raise ValueError(f"{name}: fewer than 2 seeds with finite scores; nothing to "
                             "bootstrap")
        clean[name] = values
    aggregates = {"median": lambda x: np.median(x, axis=0),
                  "iqm": iqm,
                  "mean": lambda x: np.mean(x, axis=0)}
    out = {name: {} for name in clean}
    for label in which:
        points, intervals = _estimates(library, clean, aggregates[label], reps, seed)
        for name in clean:
            out[name][label] = (points[name], intervals[name][0], intervals[name][1])
    return out


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) of one task's scores ``x [n]``, ``y [m]``: the share of the n * m pairs in
    which x's run beats y's, ties counting half. Equal to rliable's
    ``metrics.probability_of_improvement`` (the Mann-Whitney U statistic over n * m; a test
    checks it), without its 3 ms of scipy per bootstrap resample."""
    diff = np.ravel(x)[:, None] - np.ravel(y)[None, :]
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


def _estimates(library, scores, fn, reps: int, seed: int):
    """rliable's ``get_interval_estimates`` (percentile intervals, stratified over runs),
    seeded: rliable 1.2's ``StratifiedBootstrap`` draws its indices from NumPy's global
    generator whatever ``random_state`` says, so that generator is seeded here and restored
    after. arch's notice that it will deprecate ``RandomState`` is silenced."""
    import warnings

    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return library.get_interval_estimates(scores, fn, reps=reps,
                                                  random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(saved)


def improvement(scores: dict[str, np.ndarray], reps: int = 2000, seed: int = 0):
    """``[(x, y, P(x > y), low, high)]`` for every ordered pair of entries (the first before
    the second in ``scores``' order): rliable's probability of improvement of x over y (ties
    count half) with its 95% stratified bootstrap interval."""
    library, _ = _rliable()
    names = list(scores)
    finite = {n: np.asarray(v, dtype=np.float64)[np.isfinite(v)].reshape(-1, 1)
              for n, v in scores.items()}
    pairs = {f"{a}|{b}": (finite[a], finite[b]) for i, a in enumerate(names)
             for b in names[i + 1:]}
    if not pairs:
        return []
    points, intervals = _estimates(library, pairs, probability_of_improvement, reps, seed)
    return [(*key.split("|"), float(points[key]), float(np.ravel(intervals[key][0])[0]),
             float(np.ravel(intervals[key][1])[0])) for key in pairs]


def table(entries: Sequence[Entry], reps: int = 2000, seed: int = 0) -> str:
    """The final scores' table (median, IQM and mean over seeds with 95% bootstrap intervals)
    and every pairwise probability of improvement, as printed by ``compare``."""
    scores = {e.name: final_scores(e) for e in entries}
    stats = interval_estimates(scores, reps, seed)
    y_name = entries[0].curve[1]
    rows = [["run", "seeds", entries[0].curve[0], f"{y_name} median [95% CI]",
             "IQM [95% CI]", "mean [95% CI]"]]
    for e in entries:
        cell = lambda k, e=e: "{:.4g} [{:.4g}, {:.4g}]".format(*map(float, np.ravel(
            stats[e.name][k])))
        finite = int(np.isfinite(scores[e.name]).sum())
        seeds = f"{finite}" if finite == len(scores[e.name]) else \
            f"{finite} of {len(scores[e.name])}"
        rows.append([e.name + ("" if e.complete else " (partial)"), seeds,
                     f"{e.x[-1]:,.0f}", cell("median"), cell("iqm"), cell("mean")])
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    fmt = lambda r: "  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                              for j, (c, w) in enumerate(zip(r, widths, strict=True)))
    lines = [f"final {y_name} over seeds (95% stratified bootstrap CIs, {reps} resamples; "
             "Agarwal et al. 2021)", *map(fmt, rows)]
    pairs = improvement(scores, reps, seed)
    if pairs:
        lines.append("probability of improvement P(X > Y) [95% CI]")
        lines += [f"  P({a} > {b}) = {p:.3f} [{lo:.3f}, {hi:.3f}]" for a, b, p, lo, hi in pairs]
    return "\n".join(lines)


def plot(path: str, entries: Sequence[Entry], reps: int = 2000, seed: int = 0) -> None:
    """The IQM learning curve of each entry with its 95% bootstrap band (per evaluation),
    written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = interval_estimates({e.name: e.y for e in entries}, reps, seed, which=("iqm",))
    x_name, y_name = entries[0].curve
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for e in entries:
        value, low, high = stats[e.name]["iqm"]
        ax.plot(e.x, value, label=e.name)
        ax.fill_between(e.x, low, high, alpha=0.2)
    ax.set(xlabel=x_name.replace("_", " "), ylabel=f"{y_name.replace('_', ' ')} (IQM)",
           title="IQM and 95% bootstrap CI over seeds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        write_atomically(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    finally:
        plt.close(fig)


def check_comparable(entries: Sequence[Entry]) -> None:
    """``ValueError`` unless the entries share their curve's y metric (a return is not a
    success rate) and have unique names."""
    curves = {e.curve[1] for e in entries}
    if len(curves) > 1:
        raise ValueError(f"the runs report different metrics ({', '.join(sorted(curves))}); "
                         "compare runs of one kind")
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"two runs have one name ({', '.join(names)}); give directories "
                         "with different names")
