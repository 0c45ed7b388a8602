import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import buffer, rollout
from purembrl.types import Transition

from .helpers import seed_slice


def linear_model(key, obs, action):
    """Deterministic: s' = 0.9 s + a, r = -|s|^2, terminated when s'[0] > 1."""
    next_obs = 0.9 * obs + action
    return next_obs, -jnp.sum(obs ** 2, axis=-1), next_obs[:, 0] > 1.0


def policy(key, obs):
    return 0.2 + 0.0 * obs


def python_rollout(start, horizon):
    obs, out, alive = np.asarray(start, np.float64), [], np.ones(len(start), bool)
    for _ in range(horizon):
        action = 0.2 + 0.0 * obs
        next_obs = 0.9 * obs + action
        term = next_obs[:, 0] > 1.0
        out.append((obs, action, -np.sum(obs ** 2, -1), next_obs, term, alive.copy()))
        alive = alive & ~term
        obs = np.where(alive[:, None], next_obs, obs)
    return out


def test_branched_rollout_matches_a_python_loop_and_respects_termination():
    start = jnp.array([[0.0, 0.0], [0.5, 1.0], [0.85, -1.0]])
    transitions, valid = rollout.branched_rollout(jax.random.key(0), linear_model, policy,
                                                  start, horizon=6)
    assert transitions.obs.shape == (6, 3, 2) and valid.shape == (6, 3)
    expected = python_rollout(start, 6)
    for t, (obs, action, reward, next_obs, term, alive) in enumerate(expected):
        np.testing.assert_array_equal(np.asarray(valid[t]), alive)
        rows = alive  # masked-out steps may hold anything
        np.testing.assert_allclose(np.asarray(transitions.obs[t])[rows], obs[rows], rtol=1e-5)
        np.testing.assert_allclose(np.asarray(transitions.action[t])[rows], action[rows])
        np.testing.assert_allclose(np.asarray(transitions.reward[t])[rows], reward[rows],
                                   rtol=1e-5)
        np.testing.assert_allclose(np.asarray(transitions.next_obs[t])[rows], next_obs[rows],
                                   rtol=1e-5)
        np.testing.assert_array_equal(np.asarray(transitions.terminated[t])[rows], term[rows])
    # from 0.85: 0.965, then 1.0685 > 1 at step 1; from 0.5 the crossing comes at step 3
    np.testing.assert_array_equal(np.asarray(valid[:, 2]), [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(valid[:, 1]), [1, 1, 1, 1, 0, 0])
    assert int(valid[:, 0].sum()) == 6  # from 0: still below 1 after six steps


def test_horizon_can_change_without_recompiling():
    start = jnp.full((4, 2), -5.0)  # far from terminating within 10 steps
    run = jax.jit(lambda key, h: rollout.branched_rollout(key, linear_model, policy, start, h,
                                                          max_horizon=10))
    for horizon in (1, 4, 10):
        _, valid = run(jax.random.key(0), horizon)
        assert valid.shape == (10, 4)
        np.testing.assert_array_equal(np.asarray(valid.sum(axis=0)), horizon)
    assert run._cache_size() == 1
    with pytest.raises(ValueError, match="max_horizon"):
        rollout.branched_rollout(jax.random.key(0), linear_model, policy, start,
                                 jnp.array(3))


def test_a_traced_horizon_computes_only_its_steps_and_the_same_transitions():
    # a traced horizon runs a fori_loop of `horizon` steps (the static one scans all of
    # max_horizon, masked): the valid transitions must be the same, the rest zero and masked
    def noisy(key, obs, action):
        next_obs = obs + action + 0.1 * jax.random.normal(key, obs.shape)
        return next_obs, obs[:, 0], next_obs[:, 0] > 1.5

    def noisy_policy(key, obs):
        return jax.random.uniform(key, obs.shape)

    start = jnp.stack([jnp.linspace(0.0, 1.0, 10)] * 2, axis=1)
    traced = jax.jit(lambda key, h: rollout.branched_rollout(key, noisy, noisy_policy, start, h,
                                                             max_horizon=6))
    for horizon in (0, 1, 3, 6, 9):
        static, static_valid = rollout.branched_rollout(
            jax.random.key(3), noisy, noisy_policy, start, min(horizon, 6), max_horizon=6)
        got, valid = traced(jax.random.key(3), jnp.int32(horizon))
        np.testing.assert_array_equal(np.asarray(valid), np.asarray(static_valid))
        rows = np.asarray(valid)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(static), strict=True):
            np.testing.assert_array_equal(np.asarray(a)[rows], np.asarray(b)[rows])
        assert not np.asarray(got.obs[min(horizon, 6):]).any()  # never computed
    assert int(static_valid.sum()) < 60  # some branches terminated


def test_non_finite_steps_are_masked_and_end_the_branch():
    def exploding(key, obs, action):
        next_obs = jnp.where(obs[:, :1] > 0.25, jnp.inf, obs + 0.1)
        return next_obs, jnp.zeros(obs.shape[0]), jnp.zeros(obs.shape[0], bool)

    start = jnp.array([[0.0], [0.2]])
    transitions, valid = rollout.branched_rollout(jax.random.key(0), exploding, policy, start,
                                                  horizon=5)
    flat, mask = rollout.flatten(transitions, valid)
    assert np.isfinite(np.asarray(flat.next_obs)[np.asarray(mask)]).all()
    np.testing.assert_array_equal(np.asarray(valid[:, 1]), [True, False, False, False, False])
    # the buffer takes exactly the valid transitions
    state = buffer.add(buffer.init(seed_slice(flat, 0), 64), flat, mask)
    assert int(state.size) == int(mask.sum())
    # what the rollout loops count as "rollouts_nonfinite": rows with a non-finite number,
    # every one of them masked out
    bad = ~np.asarray(rollout.finite_rows(flat))
    assert bad.sum() >= 4 and not (bad & np.asarray(mask)).any()


def test_stochastic_model_and_policy_under_vmap_over_seeds():
    def noisy_model(key, obs, action):
        return obs + action + 0.1 * jax.random.normal(key, obs.shape), obs[:, 0], \
            jnp.zeros(obs.shape[0], bool)

    def noisy_policy(key, obs):
        return jax.random.uniform(key, obs.shape, minval=-1, maxval=1)

    start = jnp.zeros((5, 3))
    run = jax.jit(jax.vmap(lambda k: rollout.branched_rollout(k, noisy_model, noisy_policy,
                                                              start, horizon=4)))
    keys = jax.random.split(jax.random.key(1), 3)
    transitions, valid = run(keys)
    assert transitions.next_obs.shape == (3, 4, 5, 3) and bool(valid.all())
    again, _ = run(keys)
    np.testing.assert_array_equal(np.asarray(transitions.next_obs), np.asarray(again.next_obs))
    assert not np.allclose(np.asarray(transitions.next_obs[0]), np.asarray(transitions.next_obs[1]))


def test_fanout_step_samples_next_states_for_an_expected_target():
    def gaussian_model(key, obs, action):
        return obs + action + jax.random.normal(key, obs.shape), obs[:, 0], obs[:, 0] > 0

    obs = jnp.array([[1.0, 2.0], [0.0, -1.0]])
    action = jnp.array([[0.5, 0.5], [1.0, 1.0]])
    next_obs, reward, terminated = rollout.fanout_step(jax.random.key(0), gaussian_model, obs,
                                                       action, num_samples=4000)
    assert next_obs.shape == (4000, 2, 2) and reward.shape == (4000, 2)
    np.testing.assert_allclose(np.asarray(next_obs.mean(0)), np.asarray(obs + action), atol=0.06)
    assert float(next_obs.std(0).mean()) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="num_samples"):
        rollout.fanout_step(jax.random.key(0), gaussian_model, obs, action, 0)


def test_transition_fields_are_kept_together():
    start = jnp.array([[0.3, 0.0]])
    transitions, valid = rollout.branched_rollout(jax.random.key(0), linear_model, policy,
                                                  start, horizon=3)
    assert isinstance(transitions, Transition)
    # each step's next_obs is the following step's obs while the branch is alive
    np.testing.assert_allclose(np.asarray(transitions.next_obs[:-1]),
                               np.asarray(transitions.obs[1:]), rtol=1e-6)


def python_returns(reward, valid, n, gamma):
    """Per (t, b): the m-step return along branch b, m = min(n, L_b - t), by a double loop."""
    horizon, batch = reward.shape
    out = np.zeros((horizon, batch)), np.ones((horizon, batch)), np.zeros((horizon, batch), int)
    for b in range(batch):
        length = int(valid[:, b].sum())
        for t in range(length):
            m = min(n, length - t)
            out[0][t, b] = sum(gamma ** i * reward[t + i, b] for i in range(m))
            out[1][t, b] = gamma ** m
            out[2][t, b] = t + m - 1
    return out


def test_branch_returns_match_a_double_loop_along_each_branch():
    start = jnp.array([[0.0, 0.0], [0.5, 0.1], [0.9, -0.3], [0.2, 0.2]])
    transitions, valid = rollout.branched_rollout(jax.random.key(0), linear_model, policy,
                                                  start, 6)
    reward, valid_np = np.asarray(transitions.reward, np.float64), np.asarray(valid)
    assert 1 <= valid_np.sum(0).min() < 6 == valid_np.sum(0).max()  # some branches terminate
    for n in (1, 2, 4, 10):
        out = rollout.branch_returns(transitions, valid, n, 0.9)
        expected, discount, last = python_returns(reward, valid_np, n, 0.9)
        t, b = np.nonzero(valid_np)
        np.testing.assert_allclose(np.asarray(out.reward)[t, b], expected[t, b], rtol=1e-5)
        np.testing.assert_allclose(np.asarray(out.discount)[t, b], discount[t, b], rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(out.next_obs)[t, b],
                                      np.asarray(transitions.next_obs)[last[t, b], b])
        np.testing.assert_array_equal(np.asarray(out.terminated)[t, b],
                                      np.asarray(transitions.terminated)[last[t, b], b])
        np.testing.assert_array_equal(np.asarray(out.obs), np.asarray(transitions.obs))
        np.testing.assert_array_equal(np.asarray(out.action), np.asarray(transitions.action))
    one = rollout.branch_returns(transitions, valid, 1, 0.9)
    np.testing.assert_array_equal(np.asarray(one.reward), np.asarray(transitions.reward))
    with pytest.raises(ValueError, match="n=0 is invalid"):
        rollout.branch_returns(transitions, valid, 0, 0.9)
    with pytest.raises(ValueError, match=r"must both be \[horizon, batch\]"):
        rollout.branch_returns(transitions, valid[0], 2, 0.9)
