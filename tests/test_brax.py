"""The Brax adapter (purembrl.envs.brax_env): gymnax's interface, termination vs truncation,
the final observation, the known termination functions against Brax's own ``done``, and a tiny
MBPO run on brax-inverted_pendulum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("brax")

from purembrl import dynamics, envs, interact  # noqa: E402
from purembrl.algos import mbpo  # noqa: E402
from purembrl.envs import brax_env, known  # noqa: E402
from purembrl.learners import SACConfig  # noqa: E402


def random_steps(env, params, key, n):
    def body(carry, k):
        obs, state = carry
        action = jax.random.uniform(k, (env.action_size,), minval=-1, maxval=1)
        next_obs, state, reward, terminated, truncated, info = env.step(k, state, action, params)
        return (next_obs, state), (obs, reward, terminated, truncated, info["final_observation"],
                                   next_obs, state.time)

    obs, state = env.reset(key, params)
    return jax.lax.scan(body, (obs, state), jax.random.split(key, n))[1]


def test_inverted_pendulum_behind_the_gymnax_interface():
    env, params = envs.make("brax-inverted_pendulum")
    spec = interact.spec(env, params)
    assert (spec.obs_dim, spec.discrete, spec.num_actions, spec.max_steps) == (4, False, 1, 1000)
    np.testing.assert_array_equal(spec.action_low, [-1.0])
    # a short time limit so that both kinds of episode end occur
    params = params.replace(max_steps_in_episode=4)
    obs, reward, terminated, truncated, final, next_obs, time = jax.tree.map(
        np.asarray, jax.jit(random_steps, static_argnums=(0, 3))(env, params,
                                                                 jax.random.key(0), 300))
    assert obs.dtype == np.float32 and obs.shape == (300, 4)
    assert terminated.any() and truncated.any()
    np.testing.assert_array_equal(reward, 1.0)  # the task's reward: 1 per step alive
    # Brax ends the episode when the pole leaves |angle| <= 0.2: terminated, not truncated
    assert (np.abs(final[terminated, 1]) > 0.2).all()
    # the time limit truncates without terminating, with the pole still up
    only_truncated = truncated & ~terminated
    assert only_truncated.any() and (np.abs(final[only_truncated, 1]) <= 0.2).all()
    # after any end the next observation is a fresh reset (near the origin), not the final one
    done = terminated | truncated
    assert (np.abs(next_obs[done]).max(axis=1) < 0.05).all()
    np.testing.assert_array_equal(final[~done], next_obs[~done])
    assert (time[done] == 0).all()
    # the known termination function (MBPO's rollouts) reads the same ends off the observations
    np.testing.assert_array_equal(
        known.brax_inverted_pendulum_terminated(obs, None, final), terminated)


def test_physics_backend_is_brax_default_unless_chosen():
    # the docs say Brax's default is its "generalized" pipeline for these tasks; make() can
    # pick another, which steps behind the same interface; an unknown one is refused by Brax
    env, _ = envs.make("brax-inverted_pendulum")
    assert env.brax_env.backend == "generalized"
    env, params = brax_env.make("brax-inverted_pendulum", backend="positional")
    assert env.brax_env.backend == "positional"
    obs, reward, *_ = jax.tree.map(np.asarray, jax.jit(random_steps, static_argnums=(0, 3))(
        env, params, jax.random.key(0), 5))
    assert obs.shape == (5, 4) and np.isfinite(obs).all() and (reward == 1.0).all()
    with pytest.raises(ValueError, match="backend"):
        brax_env.make("brax-inverted_pendulum", backend="nope")


def test_known_hopper_termination_is_brax_done():
    """MBPO's Hopper termination function in observation space gives exactly Brax's ``done``
    on random-action episodes (which fall within tens of steps: both outcomes occur)."""
    env, params = envs.make("brax-hopper")
    obs, _, terminated, truncated, final, _, _ = jax.tree.map(
        np.asarray, jax.jit(random_steps, static_argnums=(0, 3))(env, params,
                                                                 jax.random.key(1), 300))
    assert terminated.sum() >= 3 and (~terminated).sum() >= 100 and not truncated.any()
    np.testing.assert_array_equal(known.brax_hopper_terminated(obs, None, final), terminated)
    assert mbpo.Config.for_env(env="brax-hopper").known_termination


def test_unknown_brax_task_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown Brax task 'hoper'"):
        envs.make("brax-hoper")


def test_tiny_mbpo_runs_on_brax_inverted_pendulum():
    """MBPO end to end on a Brax task (learned reward and termination, though the preset knows
    the termination), 2 seeds in one jit(vmap): the plumbing, not learning (600 steps)."""
    config = mbpo.Config.for_env(
        env="brax-inverted_pendulum", known_termination=False, total_steps=600, eval_every=200,
        initial_random_steps=200, eval_episodes=2, buffer_size=2000, batch_size=64,
        updates_per_step=2, model_train_freq=200, rollout_freq=100, rollouts_per_step=2,
        rollout_schedule=(1, 1, 2, 2), epoch_length=200,
        model=dynamics.EnsembleConfig(num_members=3, num_elites=2, hidden_sizes=(32, 32),
                                      max_epochs=3),
        learner=SACConfig(hidden_sizes=(32, 32)))
    _, m = jax.jit(jax.vmap(mbpo.make_train(config)))(jax.random.split(jax.random.key(0), 2))
    assert np.asarray(m["env_steps"])[0].tolist() == [400, 600]
    for name in ("eval_return", "model_val_mse", "critic_loss"):
        assert np.isfinite(np.asarray(m[name])).all(), name
    assert (np.asarray(m["eval_return"]) >= 1).all()  # every episode lasts at least a step
    assert (np.asarray(m["rollouts_added"]) > 0).all()
    assert not np.array_equal(np.asarray(m["critic_loss"][0]), np.asarray(m["critic_loss"][1]))
    assert float(jnp.max(m["model_val_mse"])) < 10
