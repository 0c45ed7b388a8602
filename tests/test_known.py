"""The known reward and termination functions, and the true dynamics as a model step, agree
with gymnax's own step."""

import gymnax
import jax
import numpy as np
import pytest

from purembrl.envs import known
from purembrl.interact import random_action, step


def rollout(name, n=400):
    env, params = gymnax.make(name)

    def body(carry, key):
        obs, state = carry
        key_a, key_s = jax.random.split(key)
        stepped = step(env, params, key_s, state, obs, random_action(env, params, key_a))
        return (stepped.obs, stepped.env_state), stepped.transition

    obs, state = env.reset(jax.random.key(0), params)
    _, transitions = jax.lax.scan(body, (obs, state), jax.random.split(jax.random.key(1), n))
    return transitions


def test_pendulum_reward_and_termination_match_the_environment():
    t = rollout("Pendulum-v1")
    reward = known.REWARD_FNS["Pendulum-v1"](t.obs, t.action, t.next_obs)
    np.testing.assert_allclose(np.asarray(reward), np.asarray(t.reward), rtol=1e-4, atol=1e-4)
    assert not np.asarray(known.TERMINATION_FNS["Pendulum-v1"](t.obs, t.action,
                                                               t.next_obs)).any()


def test_cartpole_reward_and_termination_match_the_environment():
    t = rollout("CartPole-v1", n=2000)
    done = known.TERMINATION_FNS["CartPole-v1"](t.obs, t.action, t.next_obs)
    np.testing.assert_array_equal(np.asarray(done), np.asarray(t.terminated))
    assert np.asarray(t.terminated).sum() > 20  # random play ends many episodes
    np.testing.assert_array_equal(np.asarray(known.REWARD_FNS["CartPole-v1"](
        t.obs, t.action, t.next_obs)), np.asarray(t.reward))


@pytest.mark.parametrize("name", ["Pendulum-v1", "CartPole-v1", "Acrobot-v1"])
def test_true_model_step_reproduces_the_environment(name):
    """Along 400 random steps (CartPole's terminations included), the model step built from
    each observation alone gives gymnax's next observation, reward and termination."""
    t = rollout(name)
    next_obs, reward, terminated = known.true_model_step(name)(jax.random.key(2), t.obs,
                                                               t.action)
    np.testing.assert_allclose(np.asarray(next_obs), np.asarray(t.next_obs), atol=1e-5)
    np.testing.assert_allclose(np.asarray(reward), np.asarray(t.reward), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(terminated), np.asarray(t.terminated))
    if name == "CartPole-v1":
        assert np.asarray(t.terminated).any()


def test_true_model_step_refuses_an_env_whose_state_is_hidden():
    with pytest.raises(ValueError, match="true dynamics are not available"):
        known.true_model_step("MountainCarContinuous-v0")
