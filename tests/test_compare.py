"""Issue 22: ``python -m purembrl compare`` (rliable's IQM, 95% stratified bootstrap CIs and
probability of improvement, Agarwal et al. 2021) over run and sweep directories."""

import json

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("rliable")

from purembrl.__main__ import main  # noqa: E402
from purembrl.driver import compare, report  # noqa: E402


def write_run(directory, returns, steps=None, complete=True):
    directory.mkdir()
    returns = np.asarray(returns, dtype=float)
    steps = steps if steps is not None else 1000 * np.arange(1, returns.shape[1] + 1)
    data = {"eval_return": returns.tolist(),
            "env_steps": np.broadcast_to(steps, returns.shape).tolist(),
            "_run": {"algorithm": "sac", "curve": ["env_steps", "eval_return"],
                     "complete": complete}}
    (directory / "metrics.json").write_text(json.dumps(data))
    return directory


@pytest.fixture
def two_runs(tmp_path):
    rng = np.random.default_rng(1)
    good = rng.normal(-150, 20, size=(8, 3)).cumsum(axis=1) / 3
    bad = rng.normal(-600, 100, size=(8, 3))
    return write_run(tmp_path / "good", good), write_run(tmp_path / "bad", bad), good, bad


def test_final_scores_match_the_closed_forms(two_runs):
    good_dir, bad_dir, good, bad = two_runs
    entries = compare.load(str(good_dir)) + compare.load(str(bad_dir))
    out = compare.interval_estimates({e.name: compare.final_scores(e) for e in entries},
                                     reps=500)
    iqm, low, high = out["good"]["iqm"]
    assert float(iqm[0]) == pytest.approx(stats.trim_mean(good[:, -1], 0.25))
    assert low[0] <= iqm[0] <= high[0] and low[0] < high[0]
    assert float(out["bad"]["median"][0][0]) == pytest.approx(np.median(bad[:, -1]))
    (x, y, p, lo, hi), = compare.improvement({"good": good[:, -1], "bad": bad[:, -1]}, 500)
    # P(X > Y): the share of (x, y) pairs with x > y, ties half
    pairs = good[:, -1][:, None] - bad[:, -1][None, :]
    assert (x, y) == ("good", "bad")
    assert p == pytest.approx(np.mean(pairs > 0) + 0.5 * np.mean(pairs == 0))
    assert lo <= p <= hi


def test_fast_statistics_equal_rliables_own():
    """``compare`` bootstraps with rliable; its per-resample statistics are written out in
    NumPy (scipy's call costs milliseconds per resample) and must equal rliable's."""
    from rliable import metrics

    rng = np.random.default_rng(3)
    for n, m in [(8, 8), (5, 7), (10, 3)]:
        x, y = rng.normal(size=n).round(1), rng.normal(size=m).round(1)  # ties included
        assert compare.probability_of_improvement(x, y) == pytest.approx(
            metrics.probability_of_improvement(x[:, None], y[:, None]))
        assert report.iqm(x[:, None])[0] == pytest.approx(metrics.aggregate_iqm(x[:, None]))
    table = rng.normal(size=(9, 4))
    assert report.iqm(table) == pytest.approx(stats.trim_mean(table, 0.25, axis=0))


def test_the_run_tables_bootstrap_agrees_with_rliables():
    """Every run's table shows the final IQM's 95% interval from ``report.bootstrap_interval``
    (NumPy, no rliable import); on the same scores rliable's stratified bootstrap gives the
    same interval up to resampling noise (5,000 resamples each, different draws)."""
    rng = np.random.default_rng(4)
    for scores in (rng.normal(-200, 50, size=8), rng.exponential(100, size=12)):
        ours = report.bootstrap_interval(scores, reps=5000)
        theirs = compare.interval_estimates({"x": scores}, reps=5000, which=("iqm",))["x"]
        spread = scores.max() - scores.min()
        assert ours == pytest.approx((float(theirs["iqm"][1][0]), float(theirs["iqm"][2][0])),
                                     abs=0.04 * spread)
    assert np.isnan(report.bootstrap_interval(np.array([1.0, np.nan]))[0])


def test_cli_prints_the_table_and_plots(two_runs, tmp_path, capsys):
    good_dir, bad_dir, good, _ = two_runs
    plot = tmp_path / "cmp.png"
    assert main(["compare", str(good_dir), str(bad_dir), "--reps", "300",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "final eval_return over seeds (95% stratified bootstrap CIs, 300 resamples" in out
    row = next(line for line in out.splitlines() if line.startswith("good "))
    assert f"{stats.trim_mean(good[:, -1], 0.25):.4g} [" in row and " 3,000 " in row
    assert "P(good > bad) = 1.000" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = main(["compare", str(good_dir), str(bad_dir), "--reps", "300"])  # seeded: same
    assert again == 0 and capsys.readouterr().out.splitlines() == out.splitlines()[:-1]


def test_a_sweep_gives_one_entry_per_point(tmp_path):
    sweep = tmp_path / "sw"
    sweep.mkdir()
    returns = np.arange(2 * 4 * 2, dtype=float).reshape(2, 4, 2)
    (sweep / "sweep.json").write_text(json.dumps({
        "points": [{"lr": 0.1}, {"lr": 0.5}], "metrics": {"eval_return": returns.tolist()},
        "_run": {"curve": ["env_steps", "eval_return"], "complete": False}}))
    entries = compare.load(str(sweep))
    assert [e.name for e in entries] == ["sw:lr=0.1", "sw:lr=0.5"]
    assert entries[1].y.tolist() == returns[1].tolist() and not entries[1].complete
    assert entries[0].x.tolist() == [1.0, 2.0]  # no env_steps: the evaluation index
    assert "sw:lr=0.5 (partial)" in compare.table(entries, reps=200)


def test_bad_input_is_one_line_and_exit_2(tmp_path, two_runs, capsys):
    good_dir, *_ = two_runs
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({
        "success_rate": [[0.5], [0.1]], "_run": {"curve": ["env_steps", "success_rate"]}}))
    cases = [([str(tmp_path / "missing")], "no metrics.json or sweep.json"),
             ([str(good_dir), str(other)], "the runs report different metrics"),
             ([str(good_dir), str(good_dir)], "two runs have one name"),
             ([str(good_dir), "--reps", "5"], "--reps 5: allowed an integer >= 100")]
    for argv, message in cases:
        assert main(["compare", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err
