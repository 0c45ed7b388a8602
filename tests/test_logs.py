"""Issue 22: logging backends (``purembrl.driver.logs``): TensorBoard event files per seed and
per group (median, IQM), read back with TensorBoard's own reader; W&B runs per seed and group,
offline, read back from their files; no point written twice when a killed run resumes;
``--log tensorboard`` and ``--log wandb`` on the command line."""

import glob
import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy import stats

from purembrl.driver import logs, report, rundir

pytest.importorskip("tensorboardX")
pytest.importorskip("tensorboard")
pytest.importorskip("wandb")
OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def fake_metrics(iterations: int, runs: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    steps = np.broadcast_to(100 * np.arange(1, iterations + 1), (runs, iterations))
    returns = rng.normal(size=(runs, iterations)).cumsum(axis=1) * 50
    returns[1, 2] = np.nan  # a diverged evaluation is skipped, not written
    return {"env_steps": steps.astype(np.int32), "eval_return": returns.astype(np.float32),
            "loss": rng.random((runs, iterations)).astype(np.float32),
            "per_action": rng.random((runs, iterations, 3)).astype(np.float32)}


def test_iqm_is_the_25_percent_trimmed_mean_without_non_finite_values():
    values = np.array([[1.0, 5.0], [2.0, np.nan], [3.0, 7.0], [100.0, 8.0], [-50.0, 9.0],
                       [4.0, np.inf], [5.0, 6.0], [6.0, 1.0]])
    got = report.iqm(values)
    assert got[0] == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))  # 8 values: middle 4
    assert got[1] == pytest.approx(stats.trim_mean([5.0, 7.0, 8.0, 9.0, 6.0, 1.0], 0.25))
    assert np.isnan(report.iqm(np.full((3, 1), np.nan)))[0]


def test_tensorboard_writes_each_seed_and_the_aggregate_once(tmp_path):
    metrics = fake_metrics(6)
    logger = logs.TensorBoard(str(tmp_path))
    logger(3, {k: v[:, :3] for k, v in metrics.items()})  # after chunk 1, then cumulative
    logger(6, metrics)
    logger.close()
    assert sorted(os.listdir(tmp_path)) == ["aggregate"] + [f"seed_{i}" for i in range(5)]
    for seed in range(5):
        got = logs.read_scalars(str(tmp_path / f"seed_{seed}"))
        assert sorted(got) == ["eval_return", "loss"]  # scalars only; x is the step
        expected = [(100 * (i + 1), float(v)) for i, v in enumerate(metrics["eval_return"][seed])
                    if np.isfinite(v)]
        assert got["eval_return"] == expected  # float32 in, float32 stored: exact
        assert [s for s, _ in got["loss"]] == [100 * i for i in range(1, 7)]
    aggregate = logs.read_scalars(str(tmp_path / "aggregate"))
    returns = metrics["eval_return"].astype(np.float64)
    assert [v for _, v in aggregate["eval_return/median"]] == pytest.approx(
        np.nanmedian(returns, axis=0))
    assert [v for _, v in aggregate["eval_return/iqm"]] == pytest.approx(
        [stats.trim_mean(c[np.isfinite(c)], 0.25) for c in returns.T])
    assert [v for _, v in aggregate["eval_return/q75"]] == pytest.approx(
        np.nanpercentile(returns, 75, axis=0))
    assert [s for s, _ in aggregate["loss/median"]] == [100 * i for i in range(1, 7)]


def test_a_new_logger_on_the_same_directory_continues_after_the_last_step(tmp_path):
    """A resumed run's logger gets every iteration so far; it writes only those after the
    last step its directory holds, so no point appears twice."""
    metrics = fake_metrics(8, runs=2)
    first = logs.TensorBoard(str(tmp_path), labels=["a", "b"], groups={"both": [0, 1]})
    first(5, {k: v[:, :5] for k, v in metrics.items()})
    first.close()
    second = logs.TensorBoard(str(tmp_path), labels=["a", "b"], groups={"both": [0, 1]})
    second(8, metrics)
    second.close()
    for name in ["a", "b", "both"]:
        got = logs.read_scalars(str(tmp_path / name))
        tag = "loss" if name != "both" else "loss/median"
        assert [s for s, _ in got[tag]] == [100 * i for i in range(1, 9)]
    assert len(os.listdir(tmp_path / "a")) == 2  # one event file per writer session


def test_bad_labels_are_one_clear_error(tmp_path):
    logger = logs.TensorBoard(str(tmp_path), labels=["only_one"])
    with pytest.raises(ValueError, match="1 labels and groups"):
        logger(4, fake_metrics(4, runs=3))


def test_combine_calls_each_in_order():
    calls = []
    fn = logs.combine(None, lambda d, m: calls.append(("a", d)), lambda d, m: calls.append(
        ("b", d)))
    fn(3, {})
    assert calls == [("a", 3), ("b", 3)]
    assert logs.combine(None) is None


# --- W&B, offline -----------------------------------------------------------------------------

def wandb_records(path: str):
    """The records of an offline W&B run file (``run-ID.wandb``): a 7-byte header, then
    LevelDB-log records (checksum, length, type; 32 KiB blocks) of ``wandb_internal_pb2``
    ``Record`` messages. Read here only to check what the logger sent."""
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B" or len(data) < 4  # W&B's service may not have flushed yet
    pos, pieces, block = 7, b"", 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # a block's padding
            pos += left
            continue
        if pos + 7 + length > len(data):  # a record still being written
            return
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        pieces = chunk if kind in (1, 2) else pieces + chunk  # full / first, middle / last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            yield record


def wandb_files(directory, timeout: float = 120.0) -> list[str]:
    """The offline run files under ``directory``, once each is complete.

    ``run.finish()`` returns before W&B's service has written the run's file out (it informs
    the service and does not wait: wandb 0.31, ``ServiceConnection.inform_finish``), so on a
    loaded machine a file read at once can still lack its records (CI, stop 43). Wait until
    every file holds its ``exit`` record."""
    deadline = time.monotonic() + timeout
    while True:
        paths = glob.glob(os.path.join(directory, "wandb", "offline-run-*", "*.wandb"))
        done = [any(r.WhichOneof("record_type") == "exit" for r in wandb_records(p))
                for p in paths]
        if all(done) or time.monotonic() > deadline:
            return paths
        time.sleep(0.2)


def wandb_runs(directory) -> dict[str, dict]:
    """``{display name: {"id", "group", "job_type", "config", "history"}}`` of every offline
    run under ``directory`` (a resumed run's segments joined, in the order written)."""
    segments = []
    for path in wandb_files(directory):
        run, history = None, []
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = record.run
            elif kind == "history":
                items = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item}
                history.append({k: v for k, v in items.items() if k[:1] != "_"})
        assert run is not None, f"{path} has no run record"
        segments.append((run, history))
    runs = {}  # a file's time is its last write, so order the segments by their start
    for run, history in sorted(segments, key=lambda s: s[0].start_time.ToNanoseconds()):
        config = {item.key: json.loads(item.value_json) for item in run.config.update
                  if item.key != "_wandb"}
        entry = runs.setdefault(run.display_name, {
            "id": run.run_id, "group": run.run_group, "job_type": run.job_type,
            "config": config, "history": []})
        assert entry["id"] == run.run_id  # a resumed segment continues the same W&B run
        entry["history"] += history
    return runs


def test_wandb_one_run_per_seed_and_group_continued_on_resume(tmp_path, monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    metrics = fake_metrics(6, runs=3)
    make = lambda: logs.WandB(str(tmp_path), group="exp", config={"lr": 0.5})
    first = make()
    first(4, {k: v[:, :4] for k, v in metrics.items()})
    first.close()
    second = make()  # a resumed run: the same W&B runs, after their last step
    second(6, metrics)
    second.close()
    runs = wandb_runs(tmp_path)
    assert sorted(runs) == ["aggregate", "seed_0", "seed_1", "seed_2"]
    assert {r["group"] for r in runs.values()} == {"exp"}
    assert runs["aggregate"]["job_type"] == "aggregate" and runs["seed_0"]["job_type"] == "seed"
    assert runs["seed_2"]["config"] == {"lr": 0.5}
    for seed in range(3):
        history = runs[f"seed_{seed}"]["history"]
        assert [h["env_steps"] for h in history] == [100 * i for i in range(1, 7)]
        returns = [h.get("eval_return") for h in history]
        expected = [float(v) if np.isfinite(v) else None for v in metrics["eval_return"][seed]]
        assert returns == pytest.approx(expected)
    iqm = [h["eval_return/iqm"] for h in runs["aggregate"]["history"]]
    assert iqm == pytest.approx(report.iqm(metrics["eval_return"]))


# --- the command line: a killed run resumed logs every episode once -------------------------

TRAIN = [sys.executable, "-m", "purembrl", "train", "dyna_q", "--env", "DynaMaze", "--seeds",
         "3", "--set", "num_episodes=12", "--chunks", "6", "--quiet", "--log", "tensorboard"]


def test_cli_log_tensorboard_survives_a_kill_and_resume(tmp_path):
    """Killed after chunk 4 (after its checkpoint, before its points are logged), resumed with
    ``--resume DIR`` alone: every episode of every seed is in the event files once, equal to
    metrics.json."""
    env = {**os.environ, "PUREMBRL_KILL_AFTER_CHUNK": "4"}
    killed = subprocess.run([*TRAIN, "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert killed.returncode == -signal.SIGKILL
    resumed = subprocess.run([sys.executable, "-m", "purembrl", "train", "--resume",
                              str(tmp_path), "--quiet"],  # logs on as the run did
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    board = tmp_path / logs.TENSORBOARD_DIR
    for seed in range(3):  # the curve's x is the episode: iterations 1..12
        got = logs.read_scalars(str(board / f"seed_{seed}"))
        assert got["steps_per_episode"] == [(i + 1, float(v)) for i, v in
                                            enumerate(metrics["steps_per_episode"][seed])]
    median = logs.read_scalars(str(board / "aggregate"))["steps_per_episode/median"]
    assert median == [(i + 1, float(np.median(c))) for i, c in enumerate(
        np.array(metrics["steps_per_episode"]).T)]
    # they are the run's results: refused without --resume, removed by --overwrite
    assert "tensorboard" in rundir.existing_results(tmp_path)
    rundir.remove_results(tmp_path)
    assert not os.path.exists(board) and rundir.existing_results(tmp_path) == []


def test_cli_sweep_logs_per_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "purembrl", "sweep", "dyna_q", "--env",
                          "DynaMaze", "--seeds", "2", "--grid", "alpha=0.1,0.5", "--set",
                          "num_episodes=3", "--chunks", "1", "--quiet", "--no-checkpoint",
                          "--log", "tensorboard", "--log", "wandb", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, **OFFLINE})
    assert out.returncode == 0, out.stderr
    board = tmp_path / logs.TENSORBOARD_DIR
    assert sorted(os.listdir(board)) == ["alpha=0.1", "alpha=0.5"]
    assert sorted(os.listdir(board / "alpha=0.5")) == ["aggregate", "seed_0", "seed_1"]
    with open(tmp_path / "sweep.json") as f:
        swept = json.load(f)
    index = swept["points"].index({"alpha": 0.5})
    got = logs.read_scalars(str(board / "alpha=0.5" / "seed_1"))["steps_per_episode"]
    assert [v for _, v in got] == swept["metrics"]["steps_per_episode"][index][1]
    runs = wandb_runs(tmp_path)  # W&B: grouped by the run directory, then the point
    assert runs["alpha=0.5/seed_1"]["group"] == f"{tmp_path.name}/alpha=0.5"
    assert runs["alpha=0.5/seed_1"]["config"]["alpha"] == 0.5
    assert runs["alpha=0.1/aggregate"]["config"]["alpha"] == 0.1
    assert [h["steps_per_episode"] for h in runs["alpha=0.5/seed_1"]["history"]] == \
        swept["metrics"]["steps_per_episode"][index][1]
