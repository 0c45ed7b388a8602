"""Goal-conditioned C-learning (purembrl.algos.c_learning) on the point maze."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import envs
from purembrl.algos import c_learning


def random_success_rate(env_name, episodes=200):
    env, params = envs.make(env_name)
    L = params.max_steps_in_episode

    def episode(key):
        key_reset, key_run = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(carry, k):
            state, reached = carry
            key_a, key_s = jax.random.split(k)
            action = env.action_space(params).sample(key_a)
            _, state, _, _, _, info = env.step(key_s, state, action, params)
            return (state, reached | info["success"]), None

        (_, reached), _ = jax.lax.scan(body, (state, jnp.zeros((), bool)),
                                       jax.random.split(key_run, L))
        return reached

    return float(jax.vmap(episode)(jax.random.split(jax.random.key(9), episodes)).mean())


@pytest.mark.parametrize("critic", ["td", "her"])
def test_reaches_goals_in_the_open_room(critic):
    """Measured with these settings: C-learning success 0.95-1.0 and 0.8 at the end (2 seeds),
    final distance 0.4-0.55 from about 3.5 at the start; the HER baseline 1.0 and 0.1-0.15; a
    uniformly random policy succeeds in about a third of the episodes (goals near the start)."""
    cfg = c_learning.Config.for_env(critic=critic)
    _, m = jax.jit(jax.vmap(c_learning.make_train(cfg)))(jax.random.split(jax.random.key(0), 2))
    success = np.asarray(m["success_rate"])
    distance = np.asarray(m["final_distance"])
    baseline = random_success_rate(cfg.env)
    assert success[:, -3:].mean() >= max(0.7, baseline + 0.3), (success, baseline)
    assert (distance[:, -3:].mean(1) < 0.5 * distance[:, 0]).all(), distance
    assert np.isfinite(np.asarray(m["critic_loss"])).all()


@pytest.mark.parametrize("critic", ["infonce", "nce"])
def test_contrastive_critic_runs(critic):
    cfg = c_learning.Config.for_env(env="PointMaze-UMaze", critic=critic, total_steps=600,
                                    eval_every=200, initial_random_steps=200, updates_per_round=10,
                                    batch_size=32)
    _, m = jax.jit(c_learning.make_train(cfg))(jax.random.key(0))
    assert np.isfinite(np.asarray(m["critic_loss"])).all()
    assert m["success_rate"].shape == (2,)


def test_config_errors():
    with pytest.raises(ValueError, match="critic"):
        c_learning.Config.for_env(critic="mse")
    with pytest.raises(ValueError, match="initial_random_steps"):
        c_learning.Config.for_env(initial_random_steps=500, capacity_episodes=5)
    with pytest.raises(ValueError, match="initial_random_steps"):
        c_learning.Config.for_env(initial_random_steps=1010)
    with pytest.raises(ValueError, match="eval_every"):
        c_learning.Config.for_env(eval_every=300)
    with pytest.raises(ValueError, match="total_steps"):
        c_learning.Config.for_env(total_steps=5100)
    with pytest.raises(ValueError, match="env"):
        c_learning.Config.for_env(env="Pendulum-v1")
    with pytest.raises(ValueError, match="gamma"):
        c_learning.Config.for_env(gamma=1.0)


def test_discrete_c_learning_on_goal_four_rooms():
    """The classifier's argmax as the policy (no actor). Measured: success 0.1-0.3 after the
    first evaluation, 0.4-0.8 after 11k steps (2 seeds); random actions: about 0.15."""
    cfg = c_learning.Config.for_env(env="FourRooms-goal", total_steps=11_000, eval_every=1000)
    state, m = jax.jit(jax.vmap(c_learning.make_train(cfg)))(
        jax.random.split(jax.random.key(0), 2))
    success = np.asarray(m["success_rate"])
    baseline = random_success_rate(cfg.env)
    assert success[:, -3:].mean() >= baseline + 0.25, (success, baseline)
    act = c_learning.policy(jax.tree.map(lambda x: x[0], state), cfg)
    actions = act(jax.random.key(0), jnp.array([[1.0, 1.0, 9.0, 9.0], [9.0, 9.0, 1.0, 1.0]]))
    assert actions.shape == (2,) and actions.dtype == jnp.int32


def test_goal_four_rooms_keeps_gymnax_dynamics_without_termination():
    env, params = envs.make("FourRooms-goal")
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (4,) and not bool((state.pos == state.goal).all())
    state = state.replace(pos=jnp.array([1, 1]), goal=jnp.array([1, 2]))
    # the intended move (right) happens with probability 2/3, as in FourRooms-misc
    keys = jax.random.split(jax.random.key(1), 3000)
    outs = jax.vmap(lambda k: env.step_env(k, state, 1, params))(keys)
    success, terminated = outs[4]["success"], outs[3]
    assert abs(float(success.mean()) - 2 / 3) < 0.03
    assert not bool(terminated.any())
    np.testing.assert_allclose(outs[2], success.astype(np.float32))
