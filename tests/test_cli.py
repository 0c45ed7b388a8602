import json
import os
import subprocess
import sys

import pytest

from .helpers import UNWRITABLE

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "purembrl", *args], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=300)


def test_list_names_algorithms_envs_and_defaults():
    out = cli("list")
    assert out.returncode == 0
    assert "dyna_q:" in out.stdout and "DynaMaze" in out.stdout
    assert "planning_steps=5" in out.stdout


def test_list_algo_prints_the_resolved_config_for_an_env_with_each_fields_doc():
    out = cli("list", "mbpo", "--env", "CartPole-v1", "--set", "model.num_members=5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "config for CartPole-v1 (its preset)" in lines[1]
    row = {line.split(" = ")[0].strip(): line for line in lines[2:]}
    assert "learner.target_period" in row and "# updates between periodic" in \
        row["learner.target_period"]  # the preset's DQN learner, every nested field
    assert row["model.num_members"].split("#")[0].split("=")[1].strip() == "5"  # --set applied
    assert row["batch_size"].split("#")[0].split("=")[1].strip() == "128"  # the preset's
    assert all("  # " in line for line in lines[2:])  # every field documented
    bad = cli("list", "dyna_q", "--env", "Pendulum-v1")
    assert bad.returncode == 2 and "env='Pendulum-v1' is invalid" in bad.stderr
    assert bad.stderr.count("\n") == 1


def test_train_writes_metrics_with_a_seed_axis(tmp_path):
    out = cli("train", "dyna_q", "--env", "DynaMaze", "--seeds", "3", "--set",
              "planning_steps=50", "--set", "num_episodes=6", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    steps = saved["steps_per_episode"]
    assert len(steps) == 3 and all(len(row) == 6 for row in steps)
    assert saved["_run"]["config"]["planning_steps"] == 50
    assert "median and interquartile range over 3 seeds" in out.stdout
    assert "[dyna_q] seeds 3: config env=DynaMaze, env_params=, num_episodes=6," in out.stderr
    assert "planning_steps=50," in out.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "nope"], "unknown algorithm 'nope'"),
    (["train", "dyna_q", "--env", "Atlantis"], "env='Atlantis' is invalid"),
    (["train", "dyna_q", "--set", "lr=0.1"], "unknown field 'lr'"),
    (["train", "dyna_q", "--set", "alpha"], "expected field=value"),
    (["train", "dyna_q", "--set", "alpha=fast"], "alpha='fast' is not a valid float"),
    (["train", "dyna_q", "--set", "gamma=2"], "gamma=2.0 is invalid"),
    (["train", "dyna_q", "--set", "planning_steps=-5"], "planning_steps=-5 is invalid"),
    (["train", "dyna_q", "--seeds", "0"], "--seeds 0"),
    (["train", "dyna_q", "--seeds", "many"], "invalid int value"),
    (["train", "dyna_q", "--seed", "99999999999999999999"],
     "--seed 99999999999999999999: allowed an integer in [-2**63, 2**63 - 1]"),
    (["train", "sac", "--set", "buffer_size=10000000000"], "buffer_size=10000000000 is invalid"),
    (["train", "sac", "--set", "total_steps=1000000000000"],
     "total_steps=1000000000000 is invalid: allowed an integer of at most 2,147,483,647"),
    (["fly"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path):
    out = cli(*args, "--out", str(tmp_path / "x")) if args[0] == "train" else cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "x").exists()  # failed before anything was written


def test_out_that_is_a_file_is_refused_and_kept(tmp_path):
    target = tmp_path / "results"
    target.write_text("precious")
    out = cli("train", "dyna_q", "--out", str(target))
    assert out.returncode == 2 and "not a directory" in out.stderr
    assert target.read_text() == "precious"


def test_mbpo_command_line_contract(tmp_path):
    out = cli("train", "mbpo", "--env", "Pendulum-v1", "--seeds", "2", "--set", "total_steps=500",
              "--set", "eval_every=250", "--set", "model.max_epochs=3", "--set",
              "rollouts_per_step=8", "--set", "updates_per_step=2", "--set",
              "learner.hidden_sizes=32,32", "--out", str(tmp_path / "mbpo"))
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / "mbpo" / "metrics.json").read_text())
    assert saved["env_steps"] == [[500], [500]]
    assert len(saved["eval_return"]) == 2 and len(saved["eval_return"][0]) == 1
    assert saved["_run"]["config"]["model"]["max_epochs"] == 3
    assert saved["_run"]["config"]["learner"]["hidden_sizes"] == [32, 32]
    assert saved["_run"]["config"]["learner"]["type"] == "sac"


@pytest.mark.parametrize("args, message", [
    (["--set", "learner.actor_lr=fast"], "actor_lr='fast' is not a valid float"),
    (["--set", "model.bogus=1"], "unknown field 'model.bogus'"),
    (["--set", "learner=dqn"], "learner=DQNConfig is invalid for this env: its actions are "
                                "continuous"),
    (["--set", "learner.eps_decay_steps=10"], "learner.eps_decay_steps': SACConfig has no "
                                              "such field"),
    (["--set", "learner.bogus=1"], "unknown field 'learner.bogus'"),
    (["--set", "learner=1"], "learner='1' is invalid: allowed one of sac, dqn, naf"),
])
def test_nested_settings_errors(args, message, tmp_path):
    out = cli("train", "mbpo", "--env", "Pendulum-v1", *args, "--out", str(tmp_path / "x"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


@pytest.mark.parametrize("algo, group", [("mba", "learner"), ("mbve", "learner")])
def test_mba_and_mbve_from_the_command_line(algo, group, tmp_path):
    out = cli("train", algo, "--env", "Pendulum-v1", "--seeds", "2", "--set", "total_steps=500",
              "--set", "model.max_epochs=2", "--set", "model.hidden_sizes=16",
              "--set", f"{group}.hidden_sizes=16", "--set", "batch_size=32",
              "--out", str(tmp_path / algo))
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / algo / "metrics.json").read_text())
    assert saved["env_steps"] == [[500], [500]]
    assert saved["_run"]["config"][group]["hidden_sizes"] == [16]


@pytest.mark.skipif(UNWRITABLE is None, reason="no unwritable directory on this machine")
def test_out_that_cannot_be_written_is_one_line_and_exit_code_2():
    out = cli("train", "dyna_q", "--out", UNWRITABLE)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "not writable" in lines[0], out.stderr


def test_train_runs_a_budget_that_is_no_multiple_of_the_evaluation_period(tmp_path):
    out = cli("train", "sac", "--env", "Pendulum-v1", "--set", "total_steps=350", "--set",
              "eval_every=100", "--set", "initial_random_steps=100", "--set", "batch_size=16",
              "--set", "eval_episodes=1", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["env_steps"] == [[200, 300, 350]]


QUICK = ["train", "dyna_q", "--env", "DynaMaze", "--set", "num_episodes=2", "--quiet"]


def _files(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def test_a_directory_holding_another_runs_results_is_refused_untouched(tmp_path):
    done = tmp_path / "done"
    assert cli(*QUICK, "--out", str(done)).returncode == 0
    before = _files(done)
    assert {"metrics.json", "checkpoint.npz", "curve.csv"} <= set(before)
    again = cli(*QUICK, "--set", "planning_steps=0", "--out", str(done))
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds another run's results" in lines[0], again.stderr
    assert "--resume" in lines[0] and "--overwrite" in lines[0]
    assert _files(done) == before  # nothing touched
    # a killed run's checkpoint alone is protected too
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "checkpoint.npz").write_bytes(b"a killed run's state")
    refused = cli(*QUICK, "--out", str(killed))
    assert refused.returncode == 2 and "checkpoint.npz" in refused.stderr
    assert _files(killed) == {"checkpoint.npz": b"a killed run's state"}
    # --overwrite replaces the results; with --resume it is refused
    both = cli(*QUICK, "--resume", str(done), "--overwrite")
    assert both.returncode == 2 and "give one of them" in both.stderr
    over = cli(*QUICK, "--set", "planning_steps=0", "--out", str(done), "--overwrite")
    assert over.returncode == 0, over.stderr
    saved = json.loads((done / "metrics.json").read_text())
    assert saved["_run"]["config"]["planning_steps"] == 0


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holder_blocks_nothing(
        tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from purembrl.driver import rundir; "
         "rundir.acquire(sys.argv[1]); print('locked', flush=True); time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = cli(*QUICK, "--out", str(out))
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"in use by another run (pid {holder.pid})" in lines[0]
        assert not (out / "metrics.json").exists()
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock, the lock file stays
        holder.wait()
    assert (out / ".purembrl.lock").exists()
    after = cli(*QUICK, "--out", str(out))
    assert after.returncode == 0, after.stderr


def test_the_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    from purembrl.driver import rundir

    probe = [sys.executable, "-c", "import sys; from purembrl.driver import rundir; "
             "rundir.acquire(sys.argv[1])", str(tmp_path)]
    rundir.acquire(tmp_path)
    rundir.acquire(tmp_path)  # the command line holds it around run(), which takes it again
    rundir.release(tmp_path)
    refused = subprocess.run(probe, capture_output=True, text=True, env=ENV)
    assert refused.returncode != 0 and f"pid {os.getpid()}" in refused.stderr
    rundir.release(tmp_path)
    assert subprocess.run(probe, capture_output=True, text=True, env=ENV).returncode == 0


def test_a_run_beyond_the_memory_is_refused_with_its_estimate_before_allocating(tmp_path):
    """Issue 23: the state and metrics are sized from their shapes before anything is
    allocated; beyond the available memory (here a stated limit of 1 MB) the run is one line,
    exit 2, and the directory it made is gone again. Within it, the estimate is printed."""
    env = {**ENV, "PUREMBRL_MEMORY_LIMIT": "1e6"}
    out = subprocess.run([sys.executable, "-m", "purembrl", "train", "sac", "--seeds", "2",
                          "--out", str(tmp_path / "big")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "the run needs about" in lines[0], out.stderr
    assert "per run x 2 runs" in lines[0] and "is available" in lines[0]
    assert not (tmp_path / "big").exists()


def test_a_run_whose_every_seed_diverged_stops_early_and_exits_1(tmp_path):
    run_dir = tmp_path / "wild"
    out = cli("train", "sac", "--env", "Pendulum-v1", "--seeds", "2", "--chunks", "4",
              "--set", "total_steps=700", "--set", "eval_every=100", "--set",
              "initial_random_steps=200", "--set", "eval_episodes=1", "--set", "batch_size=32",
              "--set", "learner.hidden_sizes=32,32", "--set", "learner.actor_lr=1e30",
              "--set", "learner.critic_lr=1e30", "--out", str(run_dir))
    assert out.returncode == 1, out.stderr
    assert "every run diverged (a non-finite number) by iteration" in out.stderr
    assert "memory about" in out.stderr  # the estimate, shown at the start
    assert "compiling, then the first chunk (1 of 5 iterations)" in out.stderr
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert len(saved["nonfinite"][0]) < 5 and all(row[-1] for row in saved["nonfinite"])
    assert (run_dir / "checkpoint.npz").exists()


def test_the_compile_cache_is_used_by_default_and_changes_no_number(tmp_path):
    """Issue 22: a second identical ``train`` loads its compiled programs from the persistent
    cache (``$PUREMBRL_CACHE_DIR``), the small ones too; the metrics of a cold, a warm and an
    uncached run are identical; ``--no-compile-cache`` writes nothing."""
    args = ["train", "sac", "--env", "Pendulum-v1", "--seeds", "2", "--set", "total_steps=300",
            "--set", "eval_every=100", "--set", "initial_random_steps=200", "--set",
            "eval_episodes=1", "--set", "batch_size=16", "--set", "learner.hidden_sizes=16,16",
            "--no-checkpoint", "--quiet"]
    runs = {}
    for name, extra, cache in (("cold", [], "cache"), ("warm", [], "cache"),
                               ("off", ["--no-compile-cache"], "unused")):
        env = {**ENV, "PUREMBRL_CACHE_DIR": str(tmp_path / cache)}
        out = subprocess.run([sys.executable, "-m", "purembrl", *args, *extra, "--out",
                              str(tmp_path / name)], capture_output=True, text=True, env=env,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        saved = json.loads((tmp_path / name / "metrics.json").read_text())
        saved.pop("_run")
        runs[name] = saved
        if name == "cold":
            stored = sorted(os.listdir(tmp_path / "cache"))
            # the two training programs (init, one chunk) and the small ones under a second
            # that JAX's default threshold would skip (a Brax env's set-up is 600 of them)
            assert len(stored) > 2, stored
    assert runs["cold"] == runs["warm"] == runs["off"]
    assert sorted(os.listdir(tmp_path / "cache")) == stored  # warm: loaded, nothing new
    assert not (tmp_path / "unused").exists()
