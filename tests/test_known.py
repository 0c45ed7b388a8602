"""The known reward and termination functions, and the true dynamics as a model step, agree
with gymnax's own step."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import envs
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


def test_acrobot_reward_and_termination_match_the_environment():
    """Random play almost never swings Acrobot up, so the states are drawn instead: 4000
    uniform joint angles and velocities, each stepped by gymnax; the known functions read the
    goal (-cos t1 - cos(t1 + t2) > 1) from the next observation's cos/sin as gymnax does from
    the angles, and give its reward (-1, or 0 at the goal)."""
    env, params = envs.make("Acrobot-v1")
    keys = jax.random.split(jax.random.key(3), 4)
    n = 4000
    angles = jax.random.uniform(keys[0], (n, 2), minval=-np.pi, maxval=np.pi)
    speeds = jax.random.uniform(keys[1], (n, 2), minval=-4.0, maxval=4.0)
    states = jax.vmap(lambda a, v: env.reset_env(keys[2], params)[1].replace(
        joint_angle1=a[0], joint_angle2=a[1], velocity_1=v[0], velocity_2=v[1]))(angles, speeds)
    actions = jax.random.randint(keys[3], (n,), 0, 3)
    obs = jax.vmap(env.get_obs)(states)
    next_obs, _, reward, done, _ = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))(
        keys[2], states, actions, params)
    terminated = known.TERMINATION_FNS["Acrobot-v1"](obs, actions, next_obs)
    np.testing.assert_array_equal(np.asarray(terminated), np.asarray(done))
    assert 100 < int(np.asarray(done).sum()) < n - 100
    np.testing.assert_array_equal(np.asarray(known.REWARD_FNS["Acrobot-v1"](
        obs, actions, next_obs)), np.asarray(reward))


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


@pytest.mark.parametrize("name", ["Pendulum-v1", "Acrobot-v1"])
def test_observation_projection_keeps_real_observations_and_fixes_predicted_ones(name):
    """``known.OBS_PROJECTIONS``: the env's own observations are (to float precision) fixed
    points; a prediction off the set comes back onto it (unit (cos, sin) pairs, speeds within
    the env's clip). Through the ensemble's step it runs before the known termination reads
    the prediction, and an MBPO config asks for it by name only where it exists."""
    from purembrl import dynamics
    from purembrl.algos import mbpo

    project = known.OBS_PROJECTIONS[name]
    t = rollout(name)
    np.testing.assert_allclose(np.asarray(project(t.next_obs)), np.asarray(t.next_obs),
                               atol=1e-6)
    off = np.asarray(t.next_obs) * 1.7 + 0.3  # off the circle, speeds scaled up
    off[:, -1] = 100.0
    fixed = np.asarray(project(jnp.asarray(off)))
    pairs = ((0, 1),) if name == "Pendulum-v1" else ((0, 1), (2, 3))
    for c, s in pairs:
        np.testing.assert_allclose(np.hypot(fixed[:, c], fixed[:, s]), 1.0, atol=1e-6)
        np.testing.assert_allclose(np.arctan2(fixed[:, s], fixed[:, c]),
                                   np.arctan2(off[:, s], off[:, c]), atol=1e-5)
    bound = 8.0 if name == "Pendulum-v1" else 9 * np.pi
    np.testing.assert_allclose(fixed[:, -1], bound, rtol=1e-6)

    obs_dim, actions = t.obs.shape[1], t.action.reshape(len(t.action), -1).astype(jnp.float32)
    config = dynamics.EnsembleConfig(num_members=2, num_elites=2, hidden_sizes=(8,))
    model = dynamics.init(jax.random.key(0), config, obs_dim=obs_dim,
                          action_dim=actions.shape[1])
    seen = []

    def termination(obs, action, next_obs):
        seen.append(next_obs)
        return jnp.zeros(obs.shape[0], bool)

    step = dynamics.make_model_step(model, config, termination_fn=termination, obs_fn=project)
    next_obs, *_ = step(jax.random.key(1), t.obs, actions)
    np.testing.assert_array_equal(np.asarray(seen[0]), np.asarray(next_obs))
    c, s = pairs[0]
    np.testing.assert_allclose(np.hypot(next_obs[:, c], next_obs[:, s]), 1.0, atol=1e-6)
    assert mbpo.Config.for_env(env=name, project_obs=True).project_obs
    with pytest.raises(ValueError, match="project_obs=True is invalid for env='CartPole-v1'"):
        mbpo.Config.for_env(env="CartPole-v1", project_obs=True)
    with pytest.raises(ValueError, match="project_obs=True is invalid with env_params"):
        mbpo.Config.for_env(env="Pendulum-v1", env_params="max_speed=10", project_obs=True,
                            known_termination=False, known_reward=False)
