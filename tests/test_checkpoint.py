"""Checkpoints (purembrl.checkpoint) and resuming runs (purembrl.run, the command line)."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import checkpoint, run
from purembrl.algos import sac
from purembrl.learners import SACConfig


def example_tree():
    return {"params": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3, jnp.bfloat16)},
            "keys": jax.random.split(jax.random.key(3), 4),
            "count": jnp.int32(7), "done": jnp.array([True, False]),
            "steps": (jnp.uint32(5), jnp.arange(3, dtype=jnp.int8))}


def test_round_trip_is_exact_keys_included(tmp_path):
    tree = example_tree()
    path = tmp_path / "c.npz"
    checkpoint.save(path, tree, {"eval_return": np.array([[1.5, 2.5]])}, {"done": 3})
    template = jax.eval_shape(lambda: tree)
    restored, arrays, meta = checkpoint.load(path, template)
    assert jax.tree.structure(restored) == jax.tree.structure(tree)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(tree), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # restored keys draw the same numbers
    np.testing.assert_array_equal(jax.random.uniform(restored["keys"][1]),
                                  jax.random.uniform(tree["keys"][1]))
    np.testing.assert_array_equal(arrays["eval_return"], [[1.5, 2.5]])
    assert meta == {"done": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


def test_concurrent_saves_to_one_path_never_collide(tmp_path):
    """Each save writes its own temporary file (a fixed ``PATH.tmp`` made two writers rename
    each other's file away: FileNotFoundError); the last rename wins, complete."""
    import threading

    path, errors = tmp_path / "c.npz", []

    def saves(i):
        try:
            for j in range(5):
                checkpoint.save(path, {"x": np.full(10_000, i * 10 + j, np.int32)},
                                meta={"i": i})
        except Exception as err:  # noqa: BLE001  (collected and reported below)
            errors.append(err)

    threads = [threading.Thread(target=saves, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    tree, _, meta = checkpoint.load(path, {"x": jax.ShapeDtypeStruct((10_000,), np.int32)})
    assert meta["i"] * 10 <= int(tree["x"][0]) < meta["i"] * 10 + 5
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_truncated_or_altered_files_are_refused(tmp_path):
    tree = example_tree()
    path = tmp_path / "c.npz"
    checkpoint.save(path, tree)
    data = path.read_bytes()
    template = jax.eval_shape(lambda: tree)
    for bad in (data[: len(data) // 2], data[:100]):
        path.write_bytes(bad)
        with pytest.raises(checkpoint.CheckpointError, match="unreadable|no header"):
            checkpoint.load(path, template)
    # zeroed (a crash on some file systems), empty or another file: named, and never NumPy's
    # advice to pass allow_pickle= (issue 23)
    for bad, what in ((bytes(len(data)), "zeroed"), (b"", "empty"), (b"\x80\x04K\x01.", "another")):
        path.write_bytes(bad)
        with pytest.raises(checkpoint.CheckpointError, match=f"not a zip archive \\({what}") as e:
            checkpoint.load(path, template)
        assert "pickle" not in str(e.value)
    # one flipped bit inside an array's bytes: the zip's CRC or the SHA-256 catches it
    start = data.index(np.arange(6.0, dtype=np.float32).tobytes())
    altered = bytearray(data)
    altered[start + 5] ^= 0x01
    path.write_bytes(bytes(altered))
    with pytest.raises(checkpoint.CheckpointError, match="unreadable|SHA-256"):
        checkpoint.load(path, template)
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing.npz", template)


def test_a_template_of_other_shapes_is_refused(tmp_path):
    tree = example_tree()
    path = tmp_path / "c.npz"
    checkpoint.save(path, tree)
    other = dict(tree, count=jnp.zeros(2, jnp.int32))
    with pytest.raises(checkpoint.CheckpointError, match="expects int32\\[2\\]"):
        checkpoint.load(path, jax.eval_shape(lambda: other))
    with pytest.raises(checkpoint.CheckpointError, match="holds 7 arrays"):
        checkpoint.load(path, jax.eval_shape(lambda: {"only": jnp.zeros(1)}))


def test_keys_of_another_prng_implementation_are_refused_naming_it(tmp_path):
    """A checkpoint written with ``JAX_DEFAULT_PRNG_IMPL=unsafe_rbg`` loads into a template of
    such keys and is refused, naming both implementations and the setting, where this
    process makes Threefry keys (``train --resume``: one line, exit 2)."""
    path = tmp_path / "c.npz"
    rbg = {"key": jax.random.split(jax.random.key(0, impl="unsafe_rbg"), 2), "x": jnp.ones(3)}
    checkpoint.save(path, rbg)
    restored, _, _ = checkpoint.load(path, jax.eval_shape(lambda: rbg))
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]),
                                  jax.random.key_data(rbg["key"]))
    fry = {"key": jax.random.split(jax.random.key(0), 2), "x": jnp.ones(3)}
    with pytest.raises(checkpoint.CheckpointError,
                       match="holds PRNG keys of JAX's 'unsafe_rbg' implementation, this "
                             "process makes 'threefry2x32' keys: run it with "
                             "JAX_DEFAULT_PRNG_IMPL=unsafe_rbg"):
        checkpoint.load(path, jax.eval_shape(lambda: fry))


def tiny_sac(**fields):
    base = dict(env="Pendulum-v1", total_steps=700, eval_every=100, initial_random_steps=200,
                eval_episodes=2, batch_size=32, learner=SACConfig(hidden_sizes=(32, 32)))
    return sac.Config.for_env(**{**base, **fields})


def test_stopped_and_resumed_run_equals_the_uninterrupted_one(tmp_path):
    """SAC (networks, Adam states, a replay buffer, env states, keys) for 2 seeds in 5 chunks:
    stopped after 2 chunks and resumed, the metrics and final state equal those of one
    uninterrupted run bit for bit."""
    config = tiny_sac()
    kwargs = dict(num_chunks=5, progress=False, table=False)
    whole = run.run(sac, config, 2, out=tmp_path / "whole", **kwargs)
    part = run.run(sac, config, 2, out=tmp_path / "split", stop_after_chunks=2, **kwargs)
    assert not part.complete and part.metrics["eval_return"].shape == (2, 2)
    with open(tmp_path / "split" / "metrics.json") as f:
        assert json.load(f)["_run"]["complete"] is False
    resumed = run.run(sac, config, 2, out=tmp_path / "split", resume=True, **kwargs)
    assert resumed.complete
    for name, value in whole.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], value, err_msg=name)
    for a, b in zip(jax.tree.leaves(whole.state), jax.tree.leaves(resumed.state), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(whole.metrics["eval_return"][0], whole.metrics["eval_return"][1])


def test_a_checkpoint_of_another_run_is_refused_naming_the_fields(tmp_path):
    config = tiny_sac()
    run.run(sac, config, 2, out=tmp_path, num_chunks=5, progress=False, table=False,
            stop_after_chunks=1)
    other = tiny_sac(batch_size=64, learner=SACConfig(hidden_sizes=(32, 32), tau=0.01))
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"config.batch_size: 32 in the checkpoint, 64 now; "
                             r"config.learner.tau: 0.005 in the checkpoint, 0.01 now"):
        run.run(sac, other, 2, out=tmp_path, progress=False, table=False, resume=True)
    with pytest.raises(checkpoint.CheckpointError, match="num_seeds: 2 in the checkpoint, 3"):
        run.run(sac, config, 3, out=tmp_path, progress=False, table=False, resume=True)
    with pytest.raises(checkpoint.CheckpointError, match="seed: 0 in the checkpoint, 1 now"):
        run.run(sac, config, 2, seed=1, out=tmp_path, progress=False, table=False, resume=True)


def test_a_checkpoint_written_before_a_field_existed_resumes_as_it_ran(tmp_path):
    """A field added to a Config after a run was saved: the stored config, which lacks it,
    reads back with the value that reproduces the run (``Config.ADDED_FIELDS``), and the run
    resumes bit for bit; today's default, which differs, is refused naming the field.
    SFQL-h's ``feature_task_sweeps`` (added 2026-12-05 with a default of 20) and
    ``feature_gate`` (2026-12-07, True): the runs stored before them ran with 0 and False."""
    from purembrl.algos import sf_gpi
    from purembrl.config import as_dict, from_dict
    from purembrl.driver import training

    old = sf_gpi.Config.for_env(env="FourRoomObjects-small", method="sfql_h", feature_tasks=1,
                                feature_task_sweeps=0, feature_gate=False, num_tasks=2,
                                steps_per_task=300, eval_every=100, eval_max_steps=60)
    kwargs = dict(num_chunks=6, progress=False, table=False)
    whole = run.run(sf_gpi, old, 2, out=tmp_path / "whole", **kwargs)
    run.run(sf_gpi, old, 2, out=tmp_path / "split", stop_after_chunks=2, **kwargs)
    # the checkpoint as a version without the two fields wrote it
    path = tmp_path / "split" / run.CHECKPOINT
    with np.load(path) as npz:
        stored = {name: npz[name] for name in npz.files}
    header = json.loads(stored["header"].tobytes().decode())
    for name in ("feature_task_sweeps", "feature_gate"):
        del header["meta"]["config"][name]
    stored["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **stored)

    config = training.stored_config(sf_gpi, tmp_path / "split")  # what `--resume DIR` reads
    assert config == old
    resumed = run.run(sf_gpi, config, 2, out=tmp_path / "split", resume=True, **kwargs)
    assert resumed.complete
    for name, value in whole.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], value, err_msg=name)
    today = sf_gpi.Config.for_env(**{**as_dict(old), "feature_task_sweeps": 20})
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"config.feature_task_sweeps: 0 in the checkpoint, 20 now"):
        run.run(sf_gpi, today, 2, out=tmp_path / "split", resume=True, **kwargs)
    # a field whose default kept the old behaviour needs no entry: its default reads back
    plain = as_dict(old)
    del plain["w_step"]
    assert from_dict(sf_gpi.Config, plain) == old


# --- the command line, in subprocesses: SIGKILL and resume ------------------------------------

TRAIN = [sys.executable, "-m", "purembrl", "train", "dyna_q", "--env", "DynaMaze", "--seeds",
         "3", "--set", "num_episodes=40", "--chunks", "20", "--quiet"]


def cli(*args, env=None, **kwargs):
    return subprocess.run([*TRAIN, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, **kwargs)


def metrics_of(directory):
    with open(os.path.join(directory, "metrics.json")) as f:
        data = json.load(f)
    data.pop("_run")
    return data


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert cli("--out", str(out)).returncode == 0
    return metrics_of(out)


def test_killed_after_a_checkpoint_resumes_bit_identical(tmp_path, uninterrupted):
    killed = cli("--out", str(tmp_path), env={"PUREMBRL_KILL_AFTER_CHUNK": "7"})
    assert killed.returncode == -signal.SIGKILL
    assert checkpoint.read_meta(tmp_path / run.CHECKPOINT)["done"] == 7 * 2  # 2 episodes a chunk
    with open(tmp_path / "metrics.json") as f:  # rewritten after every chunk: the curve is kept
        partial = json.load(f)
    assert partial["_run"]["complete"] is False
    assert partial["steps_per_episode"] == [row[:6 * 2] for row in
                                            uninterrupted["steps_per_episode"]]  # chunks 1-6
    assert len((tmp_path / "curve.csv").read_text().splitlines()) == 1 + 6 * 2
    resumed = cli("--resume", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert metrics_of(tmp_path) == uninterrupted


def test_resume_alone_takes_the_algorithm_config_and_seeds_from_the_checkpoint(
        tmp_path, uninterrupted):
    """Issue 22: ``train --resume DIR`` with nothing else continues the run (algorithm, env,
    config, seed count and base seed from its checkpoint), bit-identical to an uninterrupted
    run; a flag given with it must agree (one line, exit 2)."""
    killed = cli("--out", str(tmp_path), env={"PUREMBRL_KILL_AFTER_CHUNK": "5"})
    assert killed.returncode == -signal.SIGKILL
    alone = [sys.executable, "-m", "purembrl", "train", "--resume", str(tmp_path), "--quiet"]
    differing = subprocess.run([*alone, "--seeds", "2"], capture_output=True, text=True,
                               timeout=300)
    assert differing.returncode == 2
    assert differing.stderr.strip().splitlines() == [
        f"error: checkpoint {tmp_path / run.CHECKPOINT} is from another run; differing: "
        "num_seeds: 3 in the checkpoint, 2 now"]
    resumed = subprocess.run(alone, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert metrics_of(tmp_path) == uninterrupted
    nothing = subprocess.run([sys.executable, "-m", "purembrl", "train"], capture_output=True,
                             text=True, timeout=300)
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == "error: train needs ALGO, or --resume DIR to continue a run"


def test_a_finished_run_trained_longer_equals_the_longer_run_from_the_start(
        tmp_path, uninterrupted):
    """Issue 22: ``--resume DIR --set num_episodes=40`` continues a finished 20-episode run to
    40 episodes, bit-identical to a 40-episode run from the start; a change of anything else,
    or a smaller budget, is one line and exit 2."""
    short = [arg if arg != "num_episodes=40" else "num_episodes=20" for arg in TRAIN]
    assert subprocess.run([*short, "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300).returncode == 0
    alone = [sys.executable, "-m", "purembrl", "train", "--resume", str(tmp_path), "--quiet"]
    for change, message in [
            ("alpha=0.5", "error: a resumed run may change only num_episodes (to train longer); "
                          "differing: alpha"),
            ("num_episodes=10", "error: num_episodes=10 is invalid: allowed at least the run's "
                                "20 (a resumed run trains longer, never shorter)")]:
        refused = subprocess.run([*alone, "--set", change], capture_output=True, text=True,
                                 timeout=300)
        assert (refused.returncode, refused.stderr.strip()) == (2, message)
    longer = subprocess.run([*alone, "--set", "num_episodes=40"], capture_output=True,
                            text=True, timeout=300)
    assert longer.returncode == 0, longer.stderr
    assert metrics_of(tmp_path) == uninterrupted
    assert checkpoint.read_meta(tmp_path / run.CHECKPOINT)["config"]["num_episodes"] == 40


def test_an_off_policy_run_trained_longer_equals_the_longer_run(tmp_path):
    """SAC: 200 trained steps continued to 400 equal 400 from the start (every schedule
    counts absolute steps); a run whose last period was cut cannot be continued exactly and
    is refused, saying why."""
    base = dict(total_steps=300, eval_every=100, initial_random_steps=100, batch_size=16,
                eval_episodes=1, learner=SACConfig(hidden_sizes=(16, 16)))
    short = sac.Config.for_env("Pendulum-v1", **base)
    long = short.replace(total_steps=500)
    options = dict(progress=False, table=False)
    run.run(sac, short, 2, out=tmp_path / "a", **options)
    extended = run.run(sac, long, 2, out=tmp_path / "a", resume=True, extend=True, **options)
    fresh = run.run(sac, long, 2, **options)
    for name, values in fresh.metrics.items():
        np.testing.assert_array_equal(extended.metrics[name], values, err_msg=name)
    cut = short.replace(total_steps=350)
    run.run(sac, cut, 2, out=tmp_path / "b", **options)
    with pytest.raises(ValueError, match="last evaluation period was cut at total_steps=350 "
                                         r"\(250 trained steps, not a multiple of eval_every=100"):
        run.run(sac, long, 2, out=tmp_path / "b", resume=True, extend=True, **options)
    with pytest.raises(ValueError, match="a sweep cannot be continued with a longer budget"):
        run.sweep(sac, [long], 1, out=tmp_path / "b", resume=True, extend=True, **options)


LONG = [sys.executable, "-m", "purembrl", "train", "dyna_q", "--env", "DynaMaze", "--seeds",
        "3", "--set", "num_episodes=1000", "--chunks", "500", "--quiet"]


@pytest.fixture(scope="module")
def long_uninterrupted(tmp_path_factory):
    whole = tmp_path_factory.mktemp("long")
    assert subprocess.run([*LONG, "--out", str(whole)], capture_output=True,
                          timeout=300).returncode == 0
    return metrics_of(whole)


def test_killed_at_random_moments_the_last_checkpoint_always_loads(tmp_path,
                                                                   long_uninterrupted):
    """500 chunks of 2 episodes, a checkpoint after each (about 3 ms apart on 2 cores): SIGKILL
    at a random moment after the process's first checkpoint, three times over one directory, so
    kills land while chunks run and while checkpoints are written. After each kill the
    checkpoint is complete and verified, and progress never goes back; resumed to the end,
    the metrics equal an uninterrupted run's."""
    out, path = tmp_path / "killed", tmp_path / "killed" / run.CHECKPOINT
    rng, done = random.Random(0), [0]
    stamp = lambda: path.stat().st_mtime_ns if path.exists() else None
    for attempt in range(3):
        before = stamp()
        proc = subprocess.Popen([*LONG, "--resume" if attempt else "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and stamp() == before:  # until this process has saved once
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done.append(checkpoint.read_meta(path)["done"])  # complete and verified, or raises
    assert done == sorted(done) and 0 < done[-1] < 1000, done
    final = subprocess.run([*LONG, "--resume", str(out)], capture_output=True, text=True,
                           timeout=300)
    assert final.returncode == 0, final.stderr
    assert metrics_of(out) == long_uninterrupted


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_at_random_moments_stop_cleanly_and_resume_bit_identical(tmp_path, sig,
                                                                          long_uninterrupted):
    """SIGINT (Ctrl-C) or SIGTERM four times (``PUREMBRL_SIGNAL_TRIES``, e.g. 10 for the
    reliability table) over one directory: half of them at a random moment 0.2-1.5 s after the
    start (mostly while jax is imported and the program compiles or loads: the process stops
    at once; with a warm compile cache a later moment can fall in the first chunk), half at a
    random moment up to 0.3 s after the process's first checkpoint (while chunks run and
    checkpoints are written: it stops after the running chunk). Never a traceback or a crash;
    exit code 128 + the signal (or 0 if the run had finished); one line saying what was kept
    and how to resume ("at once" whenever the process wrote no checkpoint); a complete
    checkpoint. Resumed to the end, the metrics equal an uninterrupted run's."""
    out, path = tmp_path / "stopped", tmp_path / "stopped" / run.CHECKPOINT
    rng = random.Random(int(sig))
    stamp = lambda: path.stat().st_mtime_ns if path.exists() else None
    for attempt in range(int(os.environ.get("PUREMBRL_SIGNAL_TRIES", "4"))):
        before = stamp()
        proc = subprocess.Popen([*LONG, "--resume" if path.exists() else "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if attempt % 2 == 0:
            time.sleep(rng.uniform(0.2, 1.5))
        else:
            while proc.poll() is None and stamp() == before:  # this process has saved once
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        assert "Traceback" not in err and proc.returncode in (128 + sig, 0), (proc.returncode,
                                                                            err)
        if proc.returncode:
            last = err.strip().splitlines()[-1]
            assert signal.Signals(sig).name in last, err
            after_chunk = "stopped after a complete chunk; resume with the same command and " \
                f"--resume {out}"
            if attempt % 2:
                assert after_chunk in last, err
            elif stamp() != before:  # the early signal fell in the first chunk or its save
                assert after_chunk in last or (
                    "stopped at once" in last and f"--resume {out}" in last), err
            else:
                assert ("stopped at once" in last and (
                    f"resume with the same command and --resume {out}" in last
                    or "nothing of this run was saved yet" in last)), err
        if path.exists():
            checkpoint.read_meta(path)  # complete and verified, or raises
    final = subprocess.run([*LONG, "--resume" if path.exists() else "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert metrics_of(out) == long_uninterrupted


def test_bad_resume_directories_get_one_line_and_exit_2(tmp_path):
    missing = cli("--resume", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr
    assert missing.stderr.count("\n") == 1 and not (tmp_path / "nothing").exists()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / run.CHECKPOINT).write_bytes(b"PK\x03\x04 not really a zip")
    result = cli("--resume", str(corrupt))
    assert result.returncode == 2 and "unreadable" in result.stderr
    assert (corrupt / run.CHECKPOINT).read_bytes() == b"PK\x03\x04 not really a zip"
    assert not (corrupt / "metrics.json").exists()
    both = cli("--resume", str(corrupt), "--out", str(tmp_path / "elsewhere"))
    assert both.returncode == 2 and "give one directory" in both.stderr


# --- trained agents back from a checkpoint -------------------------------------------------------

def test_every_config_round_trips_through_its_dict():
    from purembrl import algos
    from purembrl.config import as_dict, from_dict

    for name in algos.ALGORITHMS:
        config_cls = algos.get(name).Config
        config = config_cls()
        plain = json.loads(json.dumps(as_dict(config)))  # as stored in a checkpoint
        assert as_dict(from_dict(config_cls, plain)) == as_dict(config), name
    with pytest.raises(ValueError, match="unknown field 'nope'"):
        from_dict(sac.Config, {"nope": 1})


def test_a_checkpointed_agent_is_evaluated_afresh(tmp_path, capsys):
    """Dyna-Q on the maze for 3 seeds: the greedy policies loaded from the checkpoint reach
    the goal (return 1) in every fresh episode, by a near-shortest path (optimum 14 steps)."""
    from purembrl.__main__ import main
    from purembrl.algos import dyna_q

    config = dyna_q.Config.for_env(env="DynaMaze", planning_steps=50, num_episodes=15)
    run.run(dyna_q, config, 3, out=tmp_path, progress=False, table=False)
    returns, lengths, meta = run.evaluate_checkpoint(tmp_path, episodes=4)
    assert returns.shape == (3,) and meta["done"] == 15
    np.testing.assert_array_equal(returns, 1.0)
    assert (lengths <= 20).all(), lengths
    policy, loaded = run.load_policy(tmp_path, index=2)
    assert loaded == config
    actions = policy(jax.random.key(0), jnp.array([[2, 0], [0, 8]]))
    assert actions.shape == (2,) and jnp.issubdtype(actions.dtype, jnp.integer)
    assert main(["eval", str(tmp_path), "--episodes", "2"]) == 0
    assert "median return 1" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_a_crash_while_writing_results_leaves_the_previous_files_whole(tmp_path, monkeypatch):
    """metrics.json, curve.csv and the checkpoint are written to a temporary file and renamed;
    a crash before the rename (simulated: fsync fails) leaves the previous version intact."""
    from purembrl.algos import dyna_q

    config = dyna_q.Config.for_env(env="DynaMaze", planning_steps=5, num_episodes=6)
    run.run(dyna_q, config, 2, out=tmp_path, num_chunks=2, progress=False, table=False)
    before = {name: (tmp_path / name).read_bytes()
              for name in ("metrics.json", "curve.csv", run.CHECKPOINT)}

    def crash(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    for save_checkpoints in (True, False):  # crash in the checkpoint's write, then metrics'
        with pytest.raises(OSError, match="disk gone"):
            run.run(dyna_q, config.replace(alpha=0.5), 2, out=tmp_path, progress=False,
                    table=False, checkpoint=save_checkpoints)
    for name, content in before.items():
        assert (tmp_path / name).read_bytes() == content, name
    json.loads((tmp_path / "metrics.json").read_text())  # still whole
    checkpoint.read(tmp_path / run.CHECKPOINT)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_replay_buffers_are_stored_up_to_their_size_and_restored_exactly(tmp_path):
    """A buffer's unfilled rows (zeros) are left out of the file and restored as zeros; rows
    past the size that are not zero bytes (here a -0.0) keep the whole leaf."""
    from purembrl import buffer

    example = {"obs": jnp.zeros(3), "done": jnp.zeros((), bool)}
    one = buffer.init(example, 1000)
    batch = {"obs": jnp.arange(30.0).reshape(10, 3), "done": jnp.arange(10) % 2 == 0}
    full = buffer.add(buffer.init(example, 8), batch)  # wrapped: nothing to leave out
    seeds = jax.tree.map(lambda a, b: jnp.stack([a, b]), buffer.add(one, batch),
                         buffer.add(one, jax.tree.map(lambda x: x[:4], batch)))
    tree = {"replay": seeds, "full": full, "weights": jnp.ones((2, 5)),
            "keys": jax.random.split(jax.random.key(1), 2)}
    path = tmp_path / "c.npz"
    checkpoint.save(path, tree)
    size = os.path.getsize(path)
    restored, _, _ = checkpoint.load(path, jax.eval_shape(lambda: tree))
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(tree), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.atleast_1d(a).view(np.uint8),
                                      np.atleast_1d(b).view(np.uint8))
    assert size < 20_000  # 2 x 1000 rows of 3 floats alone would be 24 kB
    cut = checkpoint.read(path)[1]["cuts"]
    assert sorted(v[1] for v in cut.values()) == [10, 10]  # obs and done: the largest size
    signed = tree | {"replay": seeds.replace(data=seeds.data | {
        "obs": seeds.data["obs"].at[0, 500, 0].set(-0.0)})}
    checkpoint.save(path, signed)
    restored, _, _ = checkpoint.load(path, jax.eval_shape(lambda: signed))
    assert np.signbit(restored["replay"].data["obs"][0, 500, 0])  # kept bit for bit
    assert len(checkpoint.read(path)[1]["cuts"]) == 1  # done only
