"""The known reward and termination functions agree with gymnax's own step."""

import gymnax
import jax
import numpy as np

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
