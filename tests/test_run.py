import json
import os

import jax
import numpy as np
import pytest

from purembrl import run
from purembrl.algos import dyna_q

from .helpers import UNWRITABLE


def test_chunk_length_divides_the_run():
    assert run.chunk_length(50, 10) == 5
    assert run.chunk_length(60, 7) in (6, 10)
    assert 60 % run.chunk_length(60, 7) == 0
    assert run.chunk_length(1, 10) == 1


def test_chunk_length_is_the_nearest_divisor_and_instant_for_any_budget():
    """The divisors are found in sqrt(n) steps (issue 23: a budget of 10^12 steps walked every
    divisor and hung); the choice is the brute-force one, ties included."""
    import math
    import time

    for n in range(1, 400):
        for chunks in (1, 2, 3, 7, 10, 40):
            target = n / chunks
            brute = min((d for d in range(1, n + 1) if n % d == 0),
                        key=lambda d: abs(math.log(d / target)))
            assert run.chunk_length(n, chunks) == brute, (n, chunks)
    start = time.perf_counter()
    assert run.chunk_length(10**12, 10) == 10**11
    assert run.chunk_length(2**61 - 1, 10) in (1, 2**61 - 1)  # a prime
    assert time.perf_counter() - start < 10


def test_a_seed_jax_cannot_take_is_a_value_error():
    with pytest.raises(ValueError, match=r"seed=99999999999999999999 is invalid"):
        run.seed_keys(99999999999999999999, 2)
    with pytest.raises(ValueError, match="seed=1.5 is invalid"):
        run.seed_keys(1.5, 2)
    assert run.seed_keys(-(2**63), 1).shape == (1,)


def test_chunked_run_equals_make_train_and_writes_results(tmp_path, capsys):
    config = dyna_q.Config.for_env(planning_steps=5, num_episodes=12)
    result = run.run(dyna_q, config, num_seeds=3, seed=11, out=tmp_path, num_chunks=4,
                     progress=True)
    # chunking changes nothing: the same keys through make_train give the same metrics
    keys = run.seed_keys(11, 3)
    _, metrics = jax.jit(jax.vmap(dyna_q.make_train(config)))(keys)
    for name, values in metrics.items():
        np.testing.assert_array_equal(result.metrics[name], np.asarray(values))
    assert result.metrics["steps_per_episode"].shape == (3, 12)

    saved = json.loads((tmp_path / "metrics.json").read_text())
    np.testing.assert_array_equal(np.array(saved["steps_per_episode"]),
                                  result.metrics["steps_per_episode"])
    assert saved["_run"]["algorithm"] == "dyna_q" and saved["_run"]["num_seeds"] == 3
    assert saved["_run"]["config"]["planning_steps"] == 5

    lines = (tmp_path / "curve.csv").read_text().splitlines()
    assert lines[0].startswith("iteration,env_steps_median,steps_per_episode_median")
    assert len(lines) == 13
    median = float(lines[-1].split(",")[2])
    assert median == np.median(result.metrics["steps_per_episode"][:, -1])
    assert (tmp_path / "curve.png").stat().st_size > 1000

    captured = capsys.readouterr()
    assert "median and interquartile range over 3 seeds" in captured.out
    assert "[dyna_q] seeds 3 | iteration 12/12" in captured.err


def test_summary_table_reports_median_and_iqr():
    metrics = {"env_steps": np.array([[1, 2], [1, 2], [1, 2], [1, 2], [1, 2]]),
               "eval_return": np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5.0]])}
    table = run.summary_table(metrics, ("env_steps", "eval_return"))
    assert "2 [1, 3]" in table and "3 [2, 4]" in table
    assert "final eval_return IQM 3 [95% CI " in table  # the mean of 2, 3, 4 of 1..5


def test_quantiles_equal_nanpercentile_with_and_without_nan():
    """The vectorised path (no NaN) gives nanpercentile's numbers and dtypes exactly; with NaN
    (a diverged run) the NaN is left out, and a column with no run left is NaN."""
    from purembrl.driver.report import quantiles

    rng = np.random.default_rng(0)
    for values in (rng.normal(size=(5, 40)).astype(np.float32), rng.normal(size=(3, 7, 2)),
                   rng.integers(-9, 9, size=(4, 6)), np.round(rng.normal(size=(8, 30)), 1)):
        want = np.nanpercentile(values, [50, 25, 75], axis=0)
        for got, w in zip(quantiles(values), want, strict=True):
            assert got.dtype == w.dtype
            np.testing.assert_array_equal(got, w)
    values = np.array([[1.0, np.nan], [2.0, np.nan], [np.nan, np.nan], [4.0, np.nan]])
    median, q25, q75 = quantiles(values)
    np.testing.assert_array_equal(median, [2.0, np.nan])
    np.testing.assert_array_equal([q25[0], q75[0]], [1.5, 3.0])


@pytest.mark.skipif(UNWRITABLE is None, reason="no unwritable directory on this machine")
def test_out_that_cannot_be_written_is_refused_even_for_root():
    """An existing directory that refuses files (sysfs here; even root's ``os.access`` says it
    is writable) is refused up front, not after a run has done its work."""
    with pytest.raises(ValueError, match="directory is not writable"):
        run.prepare_out(UNWRITABLE)
    with pytest.raises(ValueError, match="cannot create directory"):
        run.prepare_out(os.path.join(UNWRITABLE, "purembrl-out"))


def test_out_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        run.prepare_out(path)
    assert path.read_text() == "keep me"


def test_progress_fn_sees_every_chunk_and_the_files_are_rewritten_after_each(tmp_path):
    """``progress_fn(iterations_done, metrics so far)`` after each chunk (brax's convention);
    with ``out``, ``metrics.json`` and ``curve.csv`` hold the run so far after every chunk."""
    config = dyna_q.Config.for_env(planning_steps=5, num_episodes=8)
    seen = []

    def progress_fn(done, metrics):
        with open(tmp_path / "run" / "metrics.json") as f:
            saved = json.load(f)
        seen.append((done, metrics["steps_per_episode"].shape,
                     len(saved["steps_per_episode"][0]), saved["_run"]["complete"]))

    result = run.run(dyna_q, config, 3, out=str(tmp_path / "run"), num_chunks=4,
                     progress=False, table=False, progress_fn=progress_fn)
    assert seen == [(2, (3, 2), 2, False), (4, (3, 4), 4, False), (6, (3, 6), 6, False),
                    (8, (3, 8), 8, False)]
    with open(tmp_path / "run" / "metrics.json") as f:
        assert json.load(f)["_run"]["complete"] is True  # the final write
    np.testing.assert_array_equal(
        run.run(dyna_q, config, 3, progress=False, table=False).metrics["steps_per_episode"],
        result.metrics["steps_per_episode"])  # the callback changes nothing
    with pytest.raises(ValueError, match="progress_fn=3 is invalid"):
        run.run(dyna_q, config, 1, progress_fn=3)


def test_progress_bar_on_a_terminal_shows_steps_rate_return_and_time_left():
    """Issue 22: on a terminal the progress is a rich bar (iterations, elapsed, env steps and
    steps per second, the latest median return, the time left); it says it is compiling
    until the first chunk is done."""
    import io

    from rich.console import Console

    from purembrl.driver import report

    screen = io.StringIO()
    display = report.ProgressDisplay("[sac] seeds 2", 10, console=Console(
        file=screen, force_terminal=True, width=200, color_system=None))
    assert "compiling, then the first chunk" in screen.getvalue()
    last = {"env_steps": np.array([[500, 1000], [500, 1000]]),
            "eval_return": np.array([[-900.0, -300.0], [-800.0, -100.0]])}
    display.update(2, last, ("env_steps", "eval_return"), 12.0, eta=48.0, first=False,
                   steps_per_second=83.3)
    display.close()
    text = screen.getvalue()
    for part in ["[sac] seeds 2", "2/10", "env steps 1,000", "83 steps/s",
                 "median eval_return -200", "about 48.0s left"]:
        assert part in text, (part, text)
