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


def gymnasium_rollout(env_id, n):
    """``n`` random steps of gymnasium's ``env_id`` (resetting at episode ends): obs, action,
    next_obs, reward and the environment's own ``terminated``."""
    import gymnasium

    env = gymnasium.make(env_id)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(n):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, next_obs, reward, terminated))
        obs = env.reset()[0] if terminated or truncated else next_obs
    return [np.stack([np.asarray(r[i], np.float32) for r in rows]) for i in range(5)]


@pytest.mark.parametrize("task", ["InvertedPendulum-v5", "Hopper-v5", "Walker2d-v5",
                                  "Ant-v5", "Hopper-v4"])
def test_gymnasium_mujoco_terminations_match_the_environments(task):
    """MBPO's termination functions against gymnasium's MuJoCo tasks' own ``terminated``
    along random steps (each task ends episodes within them, Ant's by a flip or jump rarely)."""
    pytest.importorskip("mujoco")
    obs, action, next_obs, _, terminated = gymnasium_rollout(task, 1500)
    done = known.TERMINATION_FNS[f"gymnasium:{task}"](obs, action, next_obs)
    np.testing.assert_array_equal(np.asarray(done), terminated.astype(bool))
    if task != "Ant-v5":
        assert terminated.sum() >= 5


def test_gymnasium_pendulum_reward_matches_the_environment():
    obs, action, next_obs, reward, terminated = gymnasium_rollout("Pendulum-v1", 400)
    np.testing.assert_allclose(np.asarray(known.REWARD_FNS["gymnasium:Pendulum-v1"](
        obs, action, next_obs)), reward, rtol=1e-4, atol=1e-4)
    assert not terminated.any()
