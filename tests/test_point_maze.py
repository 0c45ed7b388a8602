"""The goal-conditioned point maze: geometry, per-axis collision, success, episodes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import envs
from purembrl.envs.point_maze import PointMaze


def test_registry_and_layouts():
    for name in ("PointMaze-Open", "PointMaze-UMaze", "PointMaze-FourRooms"):
        env, params = envs.make(name)
        obs, state = env.reset(jax.random.key(0), params)
        assert obs.shape == (4,) and bool(env.is_free(state.pos)) and bool(env.is_free(state.goal))
    with pytest.raises(ValueError, match="start"):
        PointMaze(("###", "#.#", "###"))


def test_walls_block_and_the_agent_slides_along_them():
    env = PointMaze("UMaze")  # start cell (1, 1); wall row 2 at columns 0-2
    params = env.default_params.replace(step_size=0.4)
    state = env.reset_env(jax.random.key(0), params)[1].replace(pos=jnp.array([1.5, 1.8]))
    _, state, *_ = env.step_env(jax.random.key(1), state, jnp.array([0.0, 1.0]), params)
    np.testing.assert_allclose(state.pos, [1.5, 1.8])  # down into the wall: blocked
    _, state, *_ = env.step_env(jax.random.key(1), state, jnp.array([1.0, 1.0]), params)
    np.testing.assert_allclose(state.pos, [1.9, 1.8], atol=1e-6)  # slides along x
    _, state, *_ = env.step_env(jax.random.key(1), state, jnp.array([5.0, 0.0]), params)
    np.testing.assert_allclose(state.pos, [2.3, 1.8], atol=1e-6)  # action clipped to [-1, 1]


def test_random_walks_stay_in_the_free_area():
    env, params = envs.make("PointMaze-FourRooms")

    def walk(carry, key):
        obs, state = carry
        key_a, key_s = jax.random.split(key)
        action = jax.random.uniform(key_a, (2,), minval=-1, maxval=1)
        obs, state, r, term, trunc, info = env.step(key_s, state, action, params)
        return (obs, state), (env.is_free(state.pos), term, info["distance"])

    obs, state = env.reset(jax.random.key(0), params)
    _, (free, term, dist) = jax.lax.scan(walk, (obs, state),
                                         jax.random.split(jax.random.key(1), 5000))
    assert bool(free.all()) and not bool(term.any()) and np.isfinite(dist).all()


def test_success_reward_and_fixed_length_episodes():
    env, params = envs.make("PointMaze-Open")
    obs, state = env.reset_env(jax.random.key(0), params)
    state = state.replace(pos=jnp.array([3.0, 3.0]), goal=jnp.array([3.2, 3.0]))
    obs, state, r, term, info = env.step_env(jax.random.key(1), state, jnp.zeros(2), params)
    assert bool(info["success"]) and float(r) == 1.0 and not bool(term)
    np.testing.assert_allclose(env.desired_goal(obs), [3.2, 3.0])
    np.testing.assert_allclose(env.achieved_goal(env.with_goal(obs, jnp.ones(2))), [3.0, 3.0])
    # gymnax truncates after max_steps_in_episode
    obs, state = env.reset(jax.random.key(2), params)
    for t in range(params.max_steps_in_episode):
        obs, state, r, term, trunc, info = env.step(jax.random.key(t), state, jnp.zeros(2),
                                                    params)
    assert bool(trunc) and int(state.time) == 0
