"""Host environments (``purembrl.envs.host``): a gymnax env stepped on the host runs the same
algorithm as inside the program; gymnasium's environments through ``gymnasium:ID``; resume."""

import subprocess
import sys

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import buffer, envs, interact, run
from purembrl.algos import dqn, sac
from purembrl.envs import host
from purembrl.learners import DQNConfig, SACConfig


def on_host(base: str):
    """``base`` (a gymnax env) as a host environment, stepped by ``host.GymnaxOnHost``."""
    env, params = gymnax.make(base)
    return host.HostEnvironment(f"{base}-on-host", lambda: host.GymnaxOnHost(env, params)), params


@pytest.fixture(scope="module", autouse=True)
def registered():
    for base in ("CartPole-v1", "Pendulum-v1"):
        envs.register(f"{base}-on-host", lambda base=base: on_host(base), overwrite=True)


def tiny_dqn(env):
    return dqn.Config(env=env, total_steps=700, eval_every=250, initial_random_steps=200,
                      eval_episodes=3, n_step=3, batch_size=32,
                      learner=DQNConfig(hidden_sizes=(32, 32)))


def test_cartpole_on_the_host_trains_bit_for_bit_as_inside_the_program():
    """DQN with 3-step returns (the replay stores episode ends) on CartPole: the same key gives
    the same metrics and final state whether the env steps inside the program or on the host
    (evaluation on its own host copies in between)."""
    key = jax.random.key(3)
    inside = jax.jit(dqn.make_train(tiny_dqn("CartPole-v1")))(key)
    outside = jax.jit(dqn.make_train(tiny_dqn("CartPole-v1-on-host")))(key)
    for name, value in inside[1].items():
        np.testing.assert_array_equal(outside[1][name], value, err_msg=name)
    np.testing.assert_array_equal(outside[0].replay.data.obs, inside[0].replay.data.obs)
    np.testing.assert_array_equal(outside[0].replay.data.episode_end,
                                  inside[0].replay.data.episode_end)
    assert int(inside[0].replay.data.episode_end.sum()) > 5  # episodes ended and restarted


def test_vmapped_host_steps_match_the_program_to_float_tolerance():
    """Under ``vmap`` each seed's env steps on the host as one call for the batch. XLA compiles
    Pendulum's arithmetic differently inside the vectorised program than in the host's
    one-env program (fused with its neighbours, vectorised across seeds), so the two paths
    agree to the last bits of float32, not bit for bit (over 100 steps; a pendulum driven at
    random amplifies those bits over longer stretches)."""
    env, params = gymnax.make("Pendulum-v1")
    henv, _ = on_host("Pendulum-v1")
    spec = interact.spec(env, params)

    def warm(e, key):
        k1, k2 = jax.random.split(key)
        obs, state = e.reset(k1, params)
        replay = buffer.init(interact.example_transition(spec), 128)
        return interact.warmup(e, params, k2, state, obs, replay, 100)[2].data

    keys = jax.random.split(jax.random.key(1), 3)
    inside = jax.jit(jax.vmap(lambda k: warm(env, k)))(keys)
    outside = jax.jit(jax.vmap(lambda k: warm(henv, k)))(keys)
    for a, b in zip(jax.tree.leaves(inside), jax.tree.leaves(outside), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)
    assert not np.allclose(inside.obs[0], inside.obs[1])  # the seeds' episodes differ


def tiny_sac(env, **fields):
    base = dict(total_steps=500, eval_every=100, initial_random_steps=200, eval_episodes=2,
                batch_size=32, learner=SACConfig(hidden_sizes=(16, 16)))
    return sac.Config(env=env, **{**base, **fields})


def test_a_stale_env_state_restarts_the_episode_with_a_true_transition():
    """A step from an env state the host no longer holds (a resumed checkpoint) resets the
    environment, steps it from the reset observation, says so, and closes the episode the
    checkpoint cut in a replay that stores episode ends."""
    env, params = gymnax.make("CartPole-v1")
    henv, _ = on_host("CartPole-v1")
    step = jax.jit(lambda k, s, a: henv.step(k, s, a, params))
    obs, state = jax.jit(lambda k: henv.reset(k, params))(jax.random.key(0))
    saved = state
    for i in range(3):
        obs, state, _, _, _, info = step(jax.random.key(10 + i), state, 1)
        assert not info["restarted"]
    key = jax.random.key(99)
    _, _, _, _, _, info = step(key, saved, 0)
    assert info["restarted"]
    _, key_reset = jax.random.split(key)
    expected_start, gym_state = env.reset_env(key_reset, params)
    np.testing.assert_array_equal(info["start_observation"], expected_start)
    expected_next = env.step_env(jax.random.split(key)[0], gym_state, 0, params)[0]
    np.testing.assert_allclose(info["final_observation"], expected_next, rtol=1e-6)

    spec = interact.spec(env, params)
    replay = buffer.init(interact.example_transition(spec, episode_end=True), 16)
    one = jnp.ones((), jnp.int32)
    obs, state = henv.reset(jax.random.key(1), params)
    obs, state, replay = interact.step_into(henv, params, jax.random.key(2), state, obs, one,
                                            replay)
    assert not replay.data.episode_end[0]
    _, _, replay = interact.step_into(henv, params, jax.random.key(3), saved, obs, one, replay)
    assert bool(replay.data.episode_end[0])  # the episode the restart cut
    restart_obs = env.reset_env(jax.random.split(jax.random.key(3))[1], params)[0]
    np.testing.assert_array_equal(replay.data.obs[1], restart_obs)  # stepped from the reset
    assert not np.array_equal(replay.data.obs[1], obs)


def test_gymnasium_pendulum_per_seed_per_key_and_resumed(tmp_path):
    """``gymnasium:Pendulum-v1`` (gymnasium's own Pendulum) for 2 seeds through the driver:
    the seeds differ; a run stopped after one of two chunks repeats the first chunk exactly
    (every episode is seeded from the run's keys); resumed (in this process, whose host envs
    have moved on since: its episodes restart), it completes with every real transition
    stored."""
    config = tiny_sac("gymnasium:Pendulum-v1", total_steps=600)
    kwargs = dict(num_chunks=2, progress=False, table=False)
    whole = run.run(sac, config, 2, out=tmp_path / "whole", **kwargs)
    assert whole.metrics["eval_return"].shape == (2, 4)
    assert not np.array_equal(whole.metrics["eval_return"][0], whole.metrics["eval_return"][1])
    assert np.all(whole.metrics["eval_length"] == 200)
    run.run(sac, config, 2, out=tmp_path / "split", stop_after_chunks=1, **kwargs)
    resumed = run.run(sac, config, 2, out=tmp_path / "split", resume=True, **kwargs)
    assert resumed.complete
    for name, value in whole.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name][:, :2], value[:, :2], err_msg=name)
    np.testing.assert_array_equal(resumed.state.replay.size, whole.state.replay.size)
    assert np.all(np.isfinite(resumed.metrics["eval_return"]))


def test_gymnasium_names_are_checked_and_bad_ones_refused():
    envs.check_name("gymnasium:Pendulum-v1")
    with pytest.raises(ValueError, match="unknown gymnasium env 'NoSuchEnv-v0'"):
        envs.check_name("gymnasium:NoSuchEnv-v0")
    with pytest.raises(ValueError, match="gymnasium environments take none"):
        envs.make("gymnasium:Pendulum-v1", "max_speed=3")
    with pytest.raises(ValueError, match="taken by a built-in"):
        envs.register("gymnasium:Mine-v0", lambda: on_host("Pendulum-v1"))
    with pytest.raises(ValueError, match="needs a discrete action space"):
        dqn.make_loop(dqn.Config(env="gymnasium:Pendulum-v1"))
    out = subprocess.run([sys.executable, "-m", "purembrl", "train", "sac", "--env",
                          "gymnasium:NoSuchEnv-v0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unknown gymnasium env 'NoSuchEnv-v0'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_gymnasium_envs_without_a_time_limit_are_refused():
    import gymnasium

    with pytest.raises(ValueError, match="has no time limit"):
        host.GymnasiumEnv(gymnasium.make("Pendulum-v1", max_episode_steps=None).unwrapped)
    assert host.seed_of(np.array([1, 2], np.uint32)) == (1 << 32) + 2
    assert jnp.shape(host.HostEnvironment(
        "p", lambda: host.GymnasiumEnv(gymnasium.make("Pendulum-v1"))).reset(
        jax.random.key(0))[0]) == (3,)
