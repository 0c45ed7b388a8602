"""Multi-host runs (``jax.distributed``), emulated on one machine: two processes with two CPU
devices each form one 4-device mesh, and the command line's results equal a one-process run's.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from purembrl import run
from purembrl.__main__ import main
from purembrl.algos import dyna_q

ARGS = ["train", "dyna_q", "--seeds", "4", "--set", "planning_steps=5", "--set",
        "num_episodes=8", "--chunks", "2", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(out, extra_env=None, resume=False):
    """The same command in two processes (2 emulated CPU devices each); their outputs."""
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu", **(extra_env or {})}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "purembrl", *ARGS, "--out", str(out),
         *(["--resume", str(out)] if resume else []), "--coordinator", f"localhost:{port}",
         "--num-processes", "2", "--process-id", str(i)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append((p.returncode, stdout, stderr))
    return results


def test_two_processes_shard_seeds_and_match_one_process(tmp_path):
    """Each process holds 2 of the 4 seeds (2 devices x 2 processes); process 0 gathers the
    metrics and the checkpoint and alone writes them; the results equal one process's run of
    the same seeds bit for bit. Then both processes are killed right after their first
    checkpoint (of 2 chunks) and resumed: the same final metrics again."""
    reference = run.run(dyna_q, dyna_q.Config.for_env(planning_steps=5, num_episodes=8), 4,
                        progress=False, table=False)

    results = _launch(tmp_path / "whole")
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    assert "wrote" in results[0][1] and "wrote" not in results[1][1]  # only process 0 writes
    for i, (_, _, stderr) in enumerate(results):
        assert f"[process {i}/2] 2 of 4 devices; 4 runs sharded over all of them" in stderr
    saved = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    np.testing.assert_array_equal(np.asarray(saved["steps_per_episode"]),
                                  reference.metrics["steps_per_episode"])
    assert (tmp_path / "whole" / "checkpoint.npz").exists()

    killed = _launch(tmp_path / "killed", {"PUREMBRL_KILL_AFTER_CHUNK": "1"})
    assert all(code != 0 for code, _, _ in killed)
    assert (tmp_path / "killed" / "checkpoint.npz").exists()
    assert not (tmp_path / "killed" / "metrics.json").exists()
    resumed = _launch(tmp_path / "killed", resume=True)
    for code, _, stderr in resumed:
        assert code == 0, stderr[-3000:]
    again = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    np.testing.assert_array_equal(np.asarray(again["steps_per_episode"]),
                                  reference.metrics["steps_per_episode"])


@pytest.mark.parametrize("args, message", [
    (["--coordinator", "localhost:1"], "go together"),
    (["--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "2"],
     "--process-id 2 is invalid"),
])
def test_bad_multi_host_options_are_one_line_and_exit_code_2(args, message, capsys, tmp_path):
    assert main([*ARGS, "--out", str(tmp_path / "never"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "never").exists()


def test_to_host_and_shard_batch_are_identities_on_one_process():
    tree = {"a": np.arange(3.0), "k": jax.random.split(jax.random.key(0), 2)}
    assert run.to_host(tree) is tree
    assert run.is_main_process()
