"""Hyperparameter sweeps under one jit(vmap) (purembrl.run.sweep, ``python -m purembrl sweep``)
and seeds sharded across devices."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from purembrl import checkpoint, run
from purembrl.__main__ import main
from purembrl.algos import dyna_q, sac
from purembrl.learners import SACConfig


def maze(n, episodes=12):
    return dyna_q.Config.for_env(env="DynaMaze", planning_steps=n, num_episodes=episodes)


def test_each_point_equals_its_own_run():
    """Dyna-Q over n in {0, 5, 50}: one compile, [points, seeds, episodes] metrics, and every
    point's curves equal a separate run of that config with the same keys, bit for bit."""
    ns = (0, 5, 50)
    result = run.sweep(dyna_q, [maze(n) for n in ns], 3,
                       points=[{"planning_steps": n} for n in ns], progress=False, table=False)
    assert result.metrics["steps_per_episode"].shape == (3, 3, 12)
    assert result.points[2] == {"planning_steps": 50}
    for i, n in enumerate(ns):
        alone = run.run(dyna_q, maze(n), 3, progress=False, table=False)
        for name, value in alone.metrics.items():
            np.testing.assert_array_equal(result.metrics[name][i], value, err_msg=name)
    steps = result.metrics["steps_per_episode"][:, :, 1:6].mean(axis=(1, 2))
    assert steps[2] < steps[0]  # planning helps (Figure 8.2's shape)


def test_points_that_set_a_loop_length_are_stepped_group_by_group():
    """Issue 24: Dyna-Q's ``SWEEP_GROUPS`` puts each planning_steps value's lanes in a group of
    its own (stepped by one vmap per group, so n = 0 does not pay n = 50's planning loop);
    groups of unequal size, or a single group, leave the lanes as one batch."""
    from purembrl.driver.sweeps import lane_groups

    grid = [maze(n).replace(alpha=a) for n in (0, 50) for a in (0.1, 0.5)]
    np.testing.assert_array_equal(lane_groups(grid, 2), [[0, 1, 2, 3], [4, 5, 6, 7]])
    shuffled = [maze(50), maze(0), maze(50), maze(0)]
    np.testing.assert_array_equal(lane_groups(shuffled, 1), [[0, 2], [1, 3]])
    assert lane_groups([maze(0), maze(0), maze(5)], 2) is None  # 2 + 1 points
    assert lane_groups([maze(5).replace(alpha=a) for a in (0.1, 0.5)], 2) is None
    assert lane_groups([sac.Config.for_env(env="Pendulum-v1")] * 2, 2) is None


def test_a_numeric_learner_field_sweeps_and_static_fields_are_refused():
    base = sac.Config.for_env(env="Pendulum-v1", total_steps=600, eval_every=200,
                              initial_random_steps=200, eval_episodes=2, batch_size=32,
                              learner=SACConfig(hidden_sizes=(32, 32)))
    configs = [base.replace(learner=base.learner.replace(actor_lr=lr)) for lr in (1e-4, 3e-3)]
    result = run.sweep(sac, configs, 2, progress=False, table=False)
    assert result.metrics["actor_loss"].shape == (2, 2, 2)
    assert np.isfinite(result.metrics["eval_return"]).all()
    assert not np.array_equal(result.metrics["actor_loss"][0], result.metrics["actor_loss"][1])
    with pytest.raises(ValueError, match="static field\\(s\\) batch_size; a sweep can vary only "
                                         "numeric fields: learner.actor_lr"):
        run.sweep(sac, [base, base.replace(batch_size=64)], 1, progress=False)
    with pytest.raises(ValueError, match="static field\\(s\\) learner.hidden_sizes"):
        run.sweep(sac, [base, base.replace(learner=SACConfig(hidden_sizes=(16, 16)))], 1)
    assert "learner.tau" in run.sweepable_fields(sac.Config)
    assert "total_steps" not in run.sweepable_fields(sac.Config)


def test_stopped_and_resumed_sweep_equals_the_uninterrupted_one(tmp_path):
    configs = [maze(0, 20), maze(5, 20)]
    kwargs = dict(num_chunks=4, progress=False, table=False)
    whole = run.sweep(dyna_q, configs, 2, **kwargs)
    part = run.sweep(dyna_q, configs, 2, out=tmp_path, stop_after_chunks=1, **kwargs)
    assert not part.complete
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"sweep\[1\].planning_steps: 5 in the checkpoint, 50 now"):
        run.sweep(dyna_q, [maze(0, 20), maze(50, 20)], 2, out=tmp_path, resume=True, **kwargs)
    resumed = run.sweep(dyna_q, configs, 2, out=tmp_path, resume=True, **kwargs)
    for name, value in whole.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], value, err_msg=name)


def test_command_line_sweep_writes_the_grid(tmp_path, capsys):
    code = main(["sweep", "dyna_q", "--env", "DynaMaze", "--seeds", "2", "--quiet",
                 "--grid", "planning_steps=0,5", "--grid", "alpha=0.1,0.5",
                 "--set", "num_episodes=8", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "4 points x 2 seeds" in out
    with open(tmp_path / "sweep.json") as f:
        data = json.load(f)
    assert data["points"] == [{"planning_steps": 0, "alpha": 0.1},
                              {"planning_steps": 0, "alpha": 0.5},
                              {"planning_steps": 5, "alpha": 0.1},
                              {"planning_steps": 5, "alpha": 0.5}]
    assert np.asarray(data["metrics"]["steps_per_episode"]).shape == (4, 2, 8)
    lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert lines[0].startswith("planning_steps,alpha,") and len(lines) == 5
    assert (tmp_path / "sweep.png").stat().st_size > 0


@pytest.mark.parametrize("grid, message", [
    (["total_steps=1000,2000"], "--grid total_steps: a static field"),
    (["learner.learning_rate=abc"],
     "--grid learner.learning_rate: learner.learning_rate='abc' is not a valid"),
    (["learner.learning_rate"], "expected field=value1,value2"),
    (["learner.learning_rate="], "no values"),
    (["nope=1,2"], "unknown field 'nope'"),
    (["learner.eps_end=0.1", "learner.eps_end=0.2"], "given twice"),
    ([], "at least one --grid"),
])
def test_command_line_grid_errors(grid, message, capsys, tmp_path):
    argv = ["sweep", "dqn", "--out", str(tmp_path / "never")]
    for item in grid:
        argv += ["--grid", item]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "never").exists()


def test_seeds_sharded_over_four_devices_equal_one_device():
    """In a process with 4 emulated CPU devices the driver places seeds (and sweep points)
    over a 1-D mesh. Dyna-Q's sharded results equal the unsharded ``jit(vmap(train))`` bit for
    bit; SAC's agree to float rounding (XLA compiles a 1-seed-per-device matmul differently
    from a 4-seed one, so summation order differs)."""
    script = textwrap.dedent("""
        import json
        import jax, numpy as np
        from purembrl import checkpoint, run
        from purembrl.algos import dyna_q, sac
        from purembrl.learners import SACConfig
        out = {"devices": jax.device_count()}
        c = dyna_q.Config.for_env(env="DynaMaze", planning_steps=5, num_episodes=10)
        r = run.run(dyna_q, c, 8, progress=False, table=False)
        out["sharding"] = str(r.state.q.sharding)
        _, m = jax.jit(jax.vmap(dyna_q.make_train(c)))(run.seed_keys(0, 8))
        out["dyna_q_equal"] = all(np.array_equal(np.asarray(m[k]), r.metrics[k]) for k in m)
        s = run.sweep(dyna_q, [c, c.replace(planning_steps=0)], 2, progress=False, table=False)
        out["sweep_equal"] = bool(np.array_equal(
            s.metrics["steps_per_episode"][0], r.metrics["steps_per_episode"][:2]))
        c = sac.Config.for_env(env="Pendulum-v1", total_steps=600, eval_every=200,
                               initial_random_steps=200, eval_episodes=2, batch_size=32,
                               learner=SACConfig(hidden_sizes=(32, 32)))
        r = run.run(sac, c, 4, progress=False, table=False)
        _, m = jax.jit(jax.vmap(sac.make_train(c)))(run.seed_keys(0, 4))
        out["sac_rel_diff"] = max(float(np.max(np.abs(np.asarray(m[k]) - r.metrics[k])
                                                / (np.abs(r.metrics[k]) + 1e-3))) for k in m)
        print("RESULT " + json.dumps(out))
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["devices"] == 4
    assert "'batch'" in result["sharding"]
    assert result["dyna_q_equal"] and result["sweep_equal"]
    assert result["sac_rel_diff"] < 1e-4, result


def test_sweep_resume_dir_alone_continues_the_sweep_from_its_checkpoint(tmp_path, capsys):
    """``sweep --resume DIR`` without ALGO: the algorithm, points, seeds and base seed come
    from the checkpoint, and the finished sweep equals an uninterrupted one; ``--grid`` without
    ALGO, and a single run's directory, are one line and exit code 2."""
    args = ["--grid", "planning_steps=0,5", "--set", "num_episodes=6", "--seeds", "2",
            "--seed", "3", "--chunks", "3", "--quiet"]
    assert main(["sweep", "dyna_q", *args, "--out", str(tmp_path / "whole")]) == 0
    configs = [dyna_q.Config.for_env(planning_steps=n, num_episodes=6) for n in (0, 5)]
    run.sweep(dyna_q, configs, 2, seed=3, out=str(tmp_path / "part"), num_chunks=3,
              stop_after_chunks=1, progress=False, table=False)
    assert main(["sweep", "--resume", str(tmp_path / "part"), "--quiet"]) == 0
    whole, part = (json.loads((tmp_path / d / "sweep.json").read_text()) for d in ("whole",
                                                                                    "part"))
    assert part["metrics"] == whole["metrics"] and part["_run"]["complete"]
    assert part["points"] == whole["points"] == [{"planning_steps": 0}, {"planning_steps": 5}]
    capsys.readouterr()
    assert main(["sweep", "--resume", str(tmp_path / "part"), "--grid", "alpha=0.1,0.2"]) == 2
    assert "give ALGO with --grid" in capsys.readouterr().err
    assert main(["train", "dyna_q", "--set", "num_episodes=2", "--quiet", "--out",
                 str(tmp_path / "single")]) == 0
    capsys.readouterr()
    assert main(["sweep", "--resume", str(tmp_path / "single")]) == 2
    err = capsys.readouterr().err
    assert "holds a single run; continue it with `train --resume" in err and err.count("\n") == 1
