"""A user's own environments and algorithms (``envs.register``, ``algos.register``) through
``run.run``, ``run.load_policy`` and every command of the command line (``--import``)."""

import json
import os
import subprocess
import sys
import types

import gymnax
import jax
import numpy as np
import pytest

from purembrl import algos, envs, run
from purembrl.algos import dqn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "custom_parts.py")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "purembrl", *args], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=600)


def short_cartpole():
    env, params = gymnax.make("CartPole-v1")
    return env, params.replace(max_steps_in_episode=50)


def test_a_registered_env_trains_under_its_name_with_its_params():
    envs.register("CartPole-short", short_cartpole)
    envs.register("CartPole-short", short_cartpole)  # the same function again: a no-op
    assert "CartPole-short" in envs.names()
    env, params = envs.make("CartPole-short")
    assert params.max_steps_in_episode == 50
    config = dqn.Config.for_env("CartPole-short", total_steps=300, eval_every=150,
                                initial_random_steps=100, eval_episodes=2, buffer_size=1000)
    result = run.run(dqn, config, 2, progress=False, table=False)
    assert np.all(result.metrics["eval_length"] <= 50)  # the registered params are used


@pytest.mark.parametrize("call, message", [
    (lambda: envs.register("CartPole-v1", short_cartpole), "taken by a built-in environment"),
    (lambda: envs.register("DynaMaze", short_cartpole), "taken by a built-in environment"),
    (lambda: envs.register(" x", short_cartpole), "non-empty string"),
    (lambda: envs.register("x", 3), "make_fn=3 is invalid"),
    (lambda: envs.register("CartPole-short", lambda: None), "already registered"),
])
def test_bad_env_registrations_are_refused(call, message):
    envs.register("CartPole-short", short_cartpole)
    with pytest.raises(ValueError, match=message):
        call()


def test_a_registered_env_that_is_not_an_env_is_refused_when_made():
    envs.register("not-an-env", lambda: object())
    with pytest.raises(ValueError, match="not a gymnax-style environment"):
        envs.make("not-an-env")


def _module(name, **parts):
    module = types.ModuleType(name)
    for part in algos.CONTRACT:
        setattr(module, part, parts.get(part, getattr(dqn, part)))
    return module


def test_a_registered_algorithm_runs_checkpoints_and_loads_by_its_name(tmp_path):
    mine = _module("users_dqn")
    assert algos.register(mine) == "users_dqn"
    assert algos.register(mine) == "users_dqn"  # again: a no-op
    assert algos.get("users_dqn") is mine and "users_dqn" in algos.names()
    config = dqn.Config.for_env(total_steps=300, eval_every=150, initial_random_steps=100,
                                eval_episodes=2, buffer_size=1000)
    result = run.run(mine, config, 2, out=str(tmp_path / "run"), progress=False, table=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["_run"]["algorithm"] == "users_dqn"
    policy, loaded = run.load_policy(tmp_path / "run", index=1)
    assert loaded == config
    obs = np.zeros((3, 4), np.float32)
    actions = policy(jax.random.key(0), obs)
    state_1 = jax.tree.map(lambda x: x[1], result.state)
    np.testing.assert_array_equal(actions, dqn.policy(state_1, config)(jax.random.key(0), obs))


@pytest.mark.parametrize("module, name, message", [
    (types.ModuleType("half"), None, "lacks Config, make_loop, make_train, policy"),
    (_module("ok"), "mbpo", "taken by purembrl's own algorithm"),
    (_module("ok"), "not a name", "allowed a Python identifier"),
    (_module("other"), "users_dqn", "taken by users_dqn"),
])
def test_bad_algorithm_registrations_are_refused(module, name, message):
    algos.register(_module("users_dqn"), overwrite=True)
    with pytest.raises(ValueError, match=message):
        algos.register(module, name)


def test_the_example_registers_an_env_and_an_algorithm_for_every_command(tmp_path):
    """``--import examples/custom_parts.py``: ``list``, ``train`` and ``eval`` know
    ``mbpo_annealed`` and ``Pendulum-heavy``; without the import ``eval`` says how to make
    them known (one line, exit 2)."""
    out = str(tmp_path / "run")
    listing = cli("list", "mbpo_annealed", "--env", "Pendulum-heavy", "--import", EXAMPLE)
    assert listing.returncode == 0, listing.stderr
    assert "anneal_steps = 2000" in listing.stdout and "# environment steps over" in \
        listing.stdout
    tiny = ["--set", "total_steps=400", "--set", "eval_every=200", "--set", "eval_episodes=1",
            "--set", "initial_random_steps=200", "--set", "model.hidden_sizes=16,16",
            "--set", "model.num_members=2", "--set", "model.num_elites=1", "--set",
            "model.max_epochs=2", "--set", "updates_per_step=1", "--set",
            "rollouts_per_step=4", "--set", "learner.hidden_sizes=16,16", "--set",
            "anneal_steps=100", "--set", "batch_size=32", "--set", "model_train_freq=100"]
    trained = cli("train", "mbpo_annealed", "--env", "Pendulum-heavy", "--seeds", "2",
                  "--chunks", "2", *tiny, "--import", EXAMPLE, "--out", out, "--quiet")
    assert trained.returncode == 0, trained.stderr[-3000:]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["_run"]["algorithm"] == "mbpo_annealed"
    assert saved["_run"]["config"]["env"] == "Pendulum-heavy"
    assert saved["_run"]["config"]["anneal_steps"] == 100
    evaluated = cli("eval", out, "--episodes", "1", "--import", EXAMPLE)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    unknown = cli("eval", out, "--episodes", "1")
    assert unknown.returncode == 2
    assert "unknown algorithm 'mbpo_annealed'" in unknown.stderr and "--import" in unknown.stderr
    assert unknown.stderr.count("\n") == 1
    missing = cli("train", "dqn", "--import", "no_such_module_here", "--out", str(tmp_path / "x"))
    assert missing.returncode == 2 and "no module named 'no_such_module_here'" in missing.stderr
    assert not (tmp_path / "x").exists()


def test_known_functions_of_a_registered_env_serve_known_termination():
    """``known.register``: a registered env's known reward and termination functions are
    what MBPO's ``known_reward`` / ``known_termination`` use (CartPole's: only the episode
    length changed); without them such a config is refused, naming the env."""
    from purembrl.algos import mbpo
    from purembrl.envs import known

    envs.register("CartPole-short", short_cartpole)
    envs.register("CartPole-unknown", short_cartpole)
    known.register("CartPole-short", reward_fn=known.cartpole_reward,
                   termination_fn=known.cartpole_terminated)
    known.register("CartPole-short", reward_fn=known.cartpole_reward)  # the same: a no-op
    config = mbpo.Config.for_env("CartPole-short", known_termination=True, known_reward=True)
    model, reward_fn, termination_fn = known.model_functions(config)
    assert reward_fn is known.cartpole_reward and termination_fn is known.cartpole_terminated
    assert not model.learn_reward and not model.learn_termination
    mbpo.make_loop(config)  # builds (compiles nothing)
    with pytest.raises(ValueError, match="known_termination=True is invalid for "
                                         "env='CartPole-unknown'"):
        mbpo.Config.for_env("CartPole-unknown", known_termination=True)


@pytest.mark.parametrize("call, message", [
    (lambda k: k.register("CartPole-v1", termination_fn=k.never_terminates),
     "has built-in known functions"),
    (lambda k: k.register("CartPole-short"), "give reward_fn, termination_fn or both"),
    (lambda k: k.register("CartPole-short", reward_fn=3), "reward_fn=3 is invalid"),
    (lambda k: k.register("", reward_fn=k.cartpole_reward), "non-empty string"),
    (lambda k: k.register("CartPole-short", termination_fn=k.never_terminates),
     "already has a registered termination function"),
])
def test_bad_known_registrations_are_refused(call, message):
    from purembrl.envs import known

    known.register("CartPole-short", termination_fn=known.cartpole_terminated, overwrite=True)
    with pytest.raises(ValueError, match=message):
        call(known)


def test_a_known_function_of_the_wrong_shape_is_refused_when_training_is_built():
    from purembrl.algos import mbpo
    from purembrl.envs import known

    envs.register("CartPole-wide", short_cartpole)
    known.register("CartPole-wide", termination_fn=lambda o, a, n: jnp_zeros_column(o))
    config = mbpo.Config.for_env("CartPole-wide", known_termination=True)
    with pytest.raises(ValueError, match=r"registered termination_fn of env 'CartPole-wide' "
                                         r"returned bool\(2, 1\).*allowed bool of shape \[2\]"):
        mbpo.make_loop(config)


def jnp_zeros_column(obs):
    return jax.numpy.zeros((obs.shape[0], 1), bool)


def test_env_params_from_the_command_line(tmp_path):
    """Issue 22: ``--set env.NAME=VALUE`` replaces one of the env's parameters (into the
    config's ``env_params``): Pendulum's episodes last 50 steps instead of 200."""
    trained = cli("train", "sac", "--env", "Pendulum-v1", "--set", "env.max_steps_in_episode=50",
                  "--set", "env.max_speed=6", "--set", "total_steps=300", "--set",
                  "eval_every=100", "--set", "initial_random_steps=100", "--set", "batch_size=16",
                  "--set", "eval_episodes=1", "--set", "learner.hidden_sizes=16,16", "--quiet",
                  "--no-checkpoint", "--out", str(tmp_path))
    assert trained.returncode == 0, trained.stderr
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["_run"]["config"]["env_params"] == "max_steps_in_episode=50,max_speed=6"
    assert np.all(np.asarray(saved["eval_length"]) == 50)  # Pendulum runs to its time limit
    listing = cli("list", "sac", "--env", "Pendulum-v1", "--set", "env.max_speed=6")
    assert listing.returncode == 0 and "env_params = 'max_speed=6'" in listing.stdout


@pytest.mark.parametrize("env_params, message", [
    ("max_speed", "'max_speed' is not NAME=VALUE"),
    ("max_speed=fast", "max_speed='fast' is not a number"),
    ("max_speed=1,max_speed=2", "max_speed is given twice"),
    ("speed=3", "Pendulum-v1 has no parameter 'speed'; its parameters are dt, g, l, m"),
    ("max_steps_in_episode=2.5", "Pendulum-v1's max_steps_in_episode is an integer"),
    ("g=inf", "g=inf is invalid: allowed a finite number"),
])
def test_bad_env_params_are_one_clear_error(env_params, message):
    from purembrl.algos import sac

    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        sac.make_loop(sac.Config.for_env("Pendulum-v1", env_params=env_params))


@pytest.mark.parametrize("env_params, message", [
    ("object_weights=1;-1", "object_weights is a vector of 3 numbers separated by ';'"),
    ("object_weights=1", "object_weights is a vector of 3 numbers separated by ';'"),
    ("goal_reward=1;2", "goal_reward is one number"),
    ("object_weights=1;nan;0", "object_weights=1;nan;0 is invalid: allowed finite numbers"),
    ("object_weights=1;;0", "object_weights='1;;0' is not a number"),
])
def test_bad_vector_env_params_are_one_clear_error(env_params, message):
    with pytest.raises(ValueError, match=message):
        envs.make("FourRoomObjects-small", env_params)


def test_a_vector_env_parameter_sets_the_task():
    """Issue 25: ``object_weights=a;b;c`` (numbers separated by ';') replaces a vector
    parameter, here the object grid's task, from a config and from ``--set env.NAME=...``; the
    reward of each step is the new w . phi."""
    from purembrl.__main__ import build_config
    from purembrl.algos import sf_policy_iteration as spi

    env, params = envs.make("FourRoomObjects-small", "object_weights=0.25;-1;0.5,goal_reward=2")
    np.testing.assert_array_equal(env.task_weights(params), [0.25, -1, 0.5, 2])
    assert params.object_weights.dtype == jax.numpy.float32
    config = build_config(spi, "FourRoomObjects-small",
                          ["env.goal_reward=2", "env.object_weights=0.25;-1;0.5"])
    assert config.env_params == "goal_reward=2,object_weights=0.25;-1;0.5"
    assert envs.parse_params(config.env_params) == {"goal_reward": 2,
                                                    "object_weights": (0.25, -1, 0.5)}
    obs, state = env.reset(jax.random.key(0), params)
    rewards = []
    for action in (0, 3, 3, 0, 0):  # up (a wall), right, right (onto a type-3 object), up, up
        obs, state, reward, *_, info = env.step(jax.random.key(1), state, action, params)
        np.testing.assert_allclose(reward, info["features"] @ env.task_weights(params))
        rewards.append(float(reward))
    assert rewards == [0, 0, 0.5, 0, 0]


def test_built_in_known_functions_refuse_changed_env_params():
    """CartPole's known termination is written for its default thresholds: with another
    ``x_threshold`` it would be silently wrong, so MBPO's preset is refused; the time limit
    may change (it truncates, no known function uses it)."""
    from purembrl.algos import mbpo

    with pytest.raises(ValueError, match="known_termination=True is invalid with env_params="
                                         "'x_threshold=1.0': the built-in functions of "
                                         "'CartPole-v1' assume its default parameters"):
        mbpo.Config.for_env("CartPole-v1", env_params="x_threshold=1.0")
    config = mbpo.Config.for_env("CartPole-v1", env_params="max_steps_in_episode=100")
    assert config.known_termination and envs.make(config.env, config.env_params)[1] \
        .max_steps_in_episode == 100
    assert mbpo.Config.for_env("CartPole-v1", env_params="x_threshold=1.0",
                               known_termination=False, known_reward=False).env_params
