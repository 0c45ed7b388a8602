"""NoisyPendulum-v1: Pendulum's transition with Gaussian noise on the next angular velocity,
everything else (angle, reward, termination) Pendulum's own."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import envs
from purembrl.envs import NoisyPendulum, known


def next_states(env, params, state, action, n):
    """``n`` draws of the step from one (s, a), one key each."""
    keys = jax.random.split(jax.random.key(3), n)
    return jax.vmap(lambda k: env.step_env(k, state, action, params))(keys)


def test_next_angular_velocity_is_pendulums_plus_gaussian_noise_of_the_stated_std():
    env, params = envs.make("NoisyPendulum-v1")
    plain, plain_params = gymnax.make("Pendulum-v1")
    _, state = plain.reset(jax.random.key(0), plain_params)
    state = state.replace(theta=jnp.float32(2.0), theta_dot=jnp.float32(0.5))
    action = jnp.array([1.0])
    obs, next_state, reward, done, _ = next_states(env, params, state, action, 20_000)
    p_obs, p_state, p_reward, p_done, _ = plain.step_env(jax.random.key(0), state, action,
                                                         plain_params)
    noise = np.asarray(next_state.theta_dot) - float(p_state.theta_dot)
    assert abs(noise.mean()) < 0.01  # 4 standard errors of 0.3 / sqrt(20000)
    assert abs(noise.std() - env.theta_dot_std) < 0.01
    np.testing.assert_allclose(np.asarray(obs[:, 2]), np.asarray(next_state.theta_dot))
    # angle, reward and termination are the deterministic Pendulum's
    np.testing.assert_allclose(np.asarray(next_state.theta), float(p_state.theta), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(obs[:, :2]), np.broadcast_to(p_obs[:2], (20_000, 2)),
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(reward), float(p_reward), rtol=1e-6)
    assert not np.asarray(done).any() and not bool(p_done)


def test_zero_noise_is_pendulum_and_the_known_functions_apply():
    env, params = NoisyPendulum(theta_dot_std=0.0), envs.make("NoisyPendulum-v1")[1]
    plain, plain_params = gymnax.make("Pendulum-v1")
    _, state = plain.reset(jax.random.key(1), plain_params)
    obs, _, reward, _, _ = env.step_env(jax.random.key(2), state, jnp.array([-0.7]), params)
    p_obs, _, p_reward, _, _ = plain.step_env(jax.random.key(2), state, jnp.array([-0.7]),
                                              plain_params)
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(p_obs))
    assert float(reward) == float(p_reward)
    # the known reward is a function of (s, a): it matches the noisy env's rewards too
    noisy, noisy_params = envs.make("NoisyPendulum-v1")
    o, s = noisy.reset(jax.random.key(4), noisy_params)
    a = jnp.array([0.3])
    o2, _, r, *_ = noisy.step(jax.random.key(5), s, a, noisy_params)
    np.testing.assert_allclose(
        np.asarray(known.REWARD_FNS["NoisyPendulum-v1"](o[None], a[None], o2[None]))[0],
        float(r), rtol=1e-4, atol=1e-4)


def test_true_model_step_of_the_noisy_pendulum_samples_different_next_states():
    model_step = known.true_model_step("NoisyPendulum-v1")
    obs = jnp.tile(jnp.array([[0.0, 1.0, 0.0]]), (64, 1))
    next_obs, _, _ = model_step(jax.random.key(0), obs, jnp.zeros((64, 1)))
    assert float(jnp.std(next_obs[:, 2])) > 0.15


@pytest.mark.parametrize("std", [-0.1, float("nan")])
def test_a_negative_or_nan_noise_is_refused(std):
    with pytest.raises(ValueError, match="theta_dot_std"):
        NoisyPendulum(theta_dot_std=std)
