"""Barreto's four-room object environment: layout, features, rewards and its exact model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import envs
from purembrl.envs.four_room_objects import SMALL_LAYOUT, FourRoomObjects


def test_layout_and_registry():
    env, params = envs.make("FourRoomObjects")
    assert (env.rows, env.cols, env.num_objects, env.num_features) == (13, 13, 12, 4)
    assert np.bincount(env.object_type).tolist() == [4, 4, 4]
    assert tuple(env.goal) == (0, 12) and tuple(env.start) == (12, 0)
    assert env.num_states == 169 * 4096
    np.testing.assert_allclose(env.task_weights(params), [1.0, 0.5, -1.0, 1.0])
    with pytest.raises(ValueError, match="start"):
        FourRoomObjects(("1 G",))


def test_picking_an_object_once_and_reaching_the_goal():
    env = FourRoomObjects(SMALL_LAYOUT)
    params = env.default_params.replace(object_weights=jnp.array([0.3, -0.7, 0.9]))
    obs, state = env.reset_env(jax.random.key(0), params)
    assert obs.tolist() == [3, 0, 0, 0, 0, 0]
    up, down, left, right = 0, 1, 2, 3
    rewards, feats = [], []
    path = [right, up, up, left, up, down, up]  # to the type-1 object at (0, 0), leave, return
    for a in path:
        obs, state, r, term, info = env.step_env(jax.random.key(1), state, a, params)
        rewards.append(float(r))
        feats.append(np.asarray(info["features"]))
        assert not term
    np.testing.assert_allclose(rewards, [0, 0, 0, 0, 0.3, 0, 0], atol=1e-6)
    np.testing.assert_allclose(feats[4], [1, 0, 0, 0])
    assert obs.tolist()[:3] == [0, 0, 1]
    # over the type-2 object at (1, 2), then to the goal at (0, 4)
    for a in [right, down, right]:
        obs, state, r, term, info = env.step_env(jax.random.key(1), state, a, params)
    np.testing.assert_allclose(float(r), -0.7, atol=1e-6)
    for a in [right, right, up]:
        obs, state, r, term, info = env.step_env(jax.random.key(1), state, a, params)
    assert bool(term) and float(r) == pytest.approx(1.0)
    np.testing.assert_allclose(info["features"], [0, 0, 0, 1])


def test_exact_model_matches_steps():
    """Random transitions of the jitted env agree with tabular_model (index, phi, terminal)."""
    env = FourRoomObjects(SMALL_LAYOUT)
    params = env.default_params
    next_index, phi, terminal = env.tabular_model()
    assert next_index.shape == (env.num_states, 4) and phi.shape == (env.num_states, 4, 4)

    def walk(carry, key):
        obs, state = carry
        key_a, key_s = jax.random.split(key)
        a = jax.random.randint(key_a, (), 0, 4)
        nobs, nstate, r, term, trunc, info = env.step(key_s, state, a, params)
        return (nobs, nstate), (env.obs_to_index(obs), a, info["features"], term,
                                env.obs_to_index(info["final_observation"]), r)

    obs, state = env.reset(jax.random.key(0), params)
    _, (idx, a, feat, term, nidx, r) = jax.lax.scan(
        walk, (obs, state), jax.random.split(jax.random.key(1), 3000))
    idx, a, nidx = np.asarray(idx), np.asarray(a), np.asarray(nidx)
    np.testing.assert_array_equal(next_index[idx, a], nidx)
    np.testing.assert_allclose(phi[idx, a], np.asarray(feat))
    np.testing.assert_array_equal(terminal[nidx], np.asarray(term))
    np.testing.assert_allclose(phi[idx, a] @ np.asarray(env.task_weights(params)), r, atol=1e-6)
    assert np.asarray(term).sum() > 0
