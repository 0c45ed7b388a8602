"""SFQL with GPI (purembrl.algos.sf_gpi) on the small four-room object layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import envs, successor
from purembrl.algos import sf_gpi

SMALL = dict(env="FourRoomObjects-small", eval_episodes=1, eval_max_steps=60)


def optimal_return(env, w, gamma, max_steps=60):
    """Undiscounted return of the gamma-optimal policy from the start, by value iteration on the
    exact deterministic model."""
    next_index, phi, terminal = env.tabular_model()
    r = phi @ np.asarray(w)
    q = np.zeros(r.shape)
    for _ in range(2000):
        v = np.where(terminal, 0.0, q.max(1))
        q = r + gamma * v[next_index]
    obs = np.concatenate([env.start, np.zeros(env.num_objects, int)])
    s, ret = int(env.obs_to_index(jnp.asarray(obs))), 0.0
    for _ in range(max_steps):
        a = int(np.argmax(q[s]))
        ret += r[s, a]
        s = next_index[s, a]
        if terminal[s]:
            break
    return ret


@pytest.mark.parametrize("method", ["sfql", "q_restart"])
def test_learns_near_optimal_policies_on_each_task(method):
    """8 seeds x 3 tasks, 8000 steps per task: the greedy policy's return against the optimal
    policy's (value iteration on the exact model with each task's true w). Tabular learning with
    epsilon = 0.15 has not converged everywhere by then (measured: SFQL 87% of the optimal total,
    58% of tasks exactly optimal; Q-learning 89%, 71%), so the test asks for 80% and a half."""
    cfg = sf_gpi.Config.for_env(method=method, num_tasks=3, steps_per_task=8000, eval_every=4000,
                                **SMALL)
    state, m = jax.jit(jax.vmap(sf_gpi.make_train(cfg)))(jax.random.split(jax.random.key(0), 8))
    env, _ = envs.make(cfg.env)
    final = np.asarray(m["eval_return"]).reshape(8, 3, 2)[:, :, -1]
    best = np.array([[optimal_return(env, w, cfg.gamma) for w in tasks]
                     for tasks in np.asarray(state.tasks)])
    assert final.sum() >= 0.8 * best.sum(), (final.sum(), best.sum())
    assert (best - final < 0.02).mean() >= 0.5
    # w is learned from rewards (a type the agent learned to avoid may never be seen again, so
    # not in every seed)
    assert float(np.median(m["w_error"][:, -1])) < 0.05
    assert np.asarray(m["task"][0]).tolist() == [0, 0, 1, 1, 2, 2]


def test_sfql_on_one_task_is_q_learning():
    """With w given, w . psi follows the Q-learning recursion exactly (linearity of TD in the
    reward), so on the first task SFQL and Q-learning take the same actions and w . psi = Q."""
    common = dict(num_tasks=1, steps_per_task=3000, eval_every=1000, learn_w=False,
                  normalised=False, **SMALL)
    s_sf, m_sf = jax.jit(sf_gpi.make_train(sf_gpi.Config.for_env(method="sfql", **common)))(
        jax.random.key(0))
    s_q, m_q = jax.jit(sf_gpi.make_train(sf_gpi.Config.for_env(method="q_restart", **common)))(
        jax.random.key(0))
    q_from_psi = successor.q_from_sf(s_sf.psi[0], s_sf.tasks[0], 0.95, normalised=False)
    np.testing.assert_allclose(q_from_psi, s_q.q, atol=1e-5)
    np.testing.assert_array_equal(m_sf["reward"], m_q["reward"])


def test_jit_vmap_seeds_differ_and_keys_repeat():
    cfg = sf_gpi.Config.for_env(num_tasks=2, steps_per_task=1000, eval_every=500, **SMALL)
    train = jax.jit(jax.vmap(sf_gpi.make_train(cfg)))
    keys = jax.random.split(jax.random.key(0), 2)
    _, m1 = train(keys)
    _, m2 = train(keys)
    np.testing.assert_array_equal(m1["reward"], m2["reward"])
    assert m1["reward"].shape == (2, 4)
    assert not np.array_equal(m1["reward"][0], m1["reward"][1])


def test_config_errors():
    with pytest.raises(ValueError, match="method"):
        sf_gpi.Config.for_env(method="dqn")
    with pytest.raises(ValueError, match="eval_every"):
        sf_gpi.Config.for_env(steps_per_task=1000, eval_every=0)
    with pytest.raises(ValueError, match="gamma"):
        sf_gpi.Config.for_env(gamma=1.0)


@pytest.mark.parametrize("method", ["sfql", "sfql_h"])
def test_records_every_period_of_a_task_and_at_its_end(method):
    """An evaluation period that does not divide the task: records every eval_every steps of
    each task and at its end, the task switching on its boundary."""
    cfg = sf_gpi.Config.for_env(method=method, num_tasks=3, steps_per_task=1000, eval_every=300,
                                feature_tasks=1, **SMALL)
    _, m = jax.jit(sf_gpi.make_train(cfg))(jax.random.key(0))
    steps = np.array([300, 600, 900, 1000])
    np.testing.assert_array_equal(m["env_steps"], np.concatenate([steps, steps + 1000,
                                                                  steps + 2000]))
    np.testing.assert_array_equal(m["task"], np.repeat([0, 1, 2], 4))
    assert np.all(np.isfinite(m["eval_return"]))
    cfg = sf_gpi.Config.for_env(num_tasks=2, steps_per_task=500, eval_every=800, **SMALL)
    _, m = jax.jit(sf_gpi.make_train(cfg))(jax.random.key(0))
    np.testing.assert_array_equal(m["env_steps"], [500, 1000])


def test_sfql_h_fits_features_then_transfers():
    """SFQL-h: Q-learning on the first h tasks (identical to q_restart with the same key), the
    fitted phi~(s, a)_j equals task j's reward w_j . phi(s, a) wherever (s, a) was tried, then
    SF + GPI on phi~."""
    common = dict(num_tasks=4, steps_per_task=2000, eval_every=1000, **SMALL)
    h = 2
    s_h, m_h = jax.jit(sf_gpi.make_train(sf_gpi.Config.for_env(method="sfql_h", feature_tasks=h,
                                                               **common)))(jax.random.key(5))
    _, m_q = jax.jit(sf_gpi.make_train(sf_gpi.Config.for_env(method="q_restart", **common)))(
        jax.random.key(5))
    np.testing.assert_array_equal(m_h["reward"][:2 * h], m_q["reward"][:2 * h])
    assert not np.array_equal(m_h["reward"][2 * h:], m_q["reward"][2 * h:])
    assert "w_error" not in m_h
    env, _ = envs.make("FourRoomObjects-small")
    _, phi, _ = env.tabular_model()
    sums, counts = np.asarray(s_h.features[..., 0]), np.asarray(s_h.features[..., 1])
    true_r = phi @ np.asarray(s_h.tasks[:h]).T  # [S, A, h]
    tried = counts > 0
    assert tried.sum() > 100
    np.testing.assert_allclose((sums / np.maximum(counts, 1))[tried], true_r[tried], atol=1e-5)
    # psi slots of the feature-fitting tasks are never used or written
    np.testing.assert_array_equal(s_h.psi[:h], 0.0)
    assert np.abs(np.asarray(s_h.psi[h:])).max() > 0
    with pytest.raises(ValueError, match="feature_tasks"):
        sf_gpi.Config.for_env(method="sfql_h", num_tasks=3, feature_tasks=5)
