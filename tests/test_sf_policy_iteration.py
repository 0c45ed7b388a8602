"""Successor-feature policy iteration (purembrl.algos.sf_policy_iteration, Algorithm 1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import envs, interact
from purembrl.algos import sf_policy_iteration as spi
from purembrl.networks import SuccessorHead
from tests.test_sf_gpi import optimal_return


def test_tabular_policy_iteration_reaches_the_optimal_return():
    cfg = spi.Config.for_env()  # tabular psi on the 4 x 5 layout
    _, m = jax.jit(jax.vmap(spi.make_train(cfg)))(jax.random.split(jax.random.key(0), 4))
    env, params = envs.make(cfg.env)
    best = optimal_return(env, np.asarray(env.task_weights(params)), cfg.gamma, 100)
    assert best == pytest.approx(3.5)
    ret = np.asarray(m["eval_return"])
    # every seed ends with the optimal policy; the first round (random data) is far from it
    np.testing.assert_allclose(ret[:, -1], best, atol=1e-5)
    assert (ret[:, 0] < best).all()
    # w is fitted by least squares on known features: exact
    assert float(np.max(m["w_error"])) < 1e-4


def test_deep_successor_features_reach_the_optimal_return():
    """An MLP psi on the one-hot-coded observation (no tabular index). Measured at 8 rounds:
    all 4 seeds of ``split(key(0), 4)`` optimal by round 6, vmapped two at a time (the
    unnormalised convention; see the module docstring). Run alone (a batch of one), keys 0, 2
    and 3 are each optimal from round 2 of 4; the test runs key 0 for 4 rounds (a quarter of
    the two-seed, 8-round run's time; the suite's slowest test before) and needs it optimal at
    the end. ``benchmarks/deep_gpi.py`` and ``psi_vs_q.py`` measure 8 seeds at full budgets."""
    cfg = spi.Config.for_env(encoding="obs", hidden_sizes=(256, 256), normalised=False, lr=1e-3,
                             td_updates=4000, steps_per_iteration=4000, num_iterations=4)
    keys = jax.random.split(jax.random.key(0), 4)[:1]
    _, m = jax.jit(jax.vmap(spi.make_train(cfg)))(keys)
    env, params = envs.make(cfg.env)
    best = optimal_return(env, np.asarray(env.task_weights(params)), cfg.gamma, 100)
    final = np.asarray(m["eval_return"])[:, -1]
    np.testing.assert_allclose(final, best, atol=1e-5)


def test_config_errors():
    with pytest.raises(ValueError, match="hidden_sizes"):
        spi.Config.for_env(encoding="obs")
    with pytest.raises(ValueError, match="encoding"):
        spi.Config.for_env(encoding="pixels")
    with pytest.raises(ValueError, match="env"):
        spi.Config.for_env(env="CartPole-v1")


def test_psi_vs_q_benchmark_feeds_q_the_input_psi_sees():
    """benchmarks/psi_vs_q.py compares psi and Q on the same input: its ``OneHot`` env observes
    the grid as ``encode_obs`` does (per-coordinate one-hot), with the inner env's rewards and
    features; its optimal return is the test's (3.5 on the 4 x 5 layout)."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from psi_vs_q import OneHot
    from psi_vs_q import optimal_return as bench_optimal

    inner, params = envs.make("FourRoomObjects-small")
    env = OneHot(inner)
    high = env.high  # the space's bound per coordinate
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    inner_obs, inner_state = inner.reset(key, params)
    assert obs.shape == env.observation_space(params).shape == (env.size,)
    np.testing.assert_array_equal(obs, spi.encode_obs(inner_obs, high, True))
    rewards = []  # a pick-up, walls, the goal (its end and the reset), then on
    for t, action in enumerate([3, 3, 0, 1, 2, 3, 3, 0, 0, 0, 3, 3, 0]):
        k = jax.random.fold_in(key, t)
        obs, state, *rest, info = env.step(k, state, action, params)
        inner_obs, inner_state, *inner_rest, inner_info = inner.step(k, inner_state, action,
                                                                     params)
        np.testing.assert_array_equal(obs, spi.encode_obs(inner_obs, high, True))
        assert [float(x) for x in rest] == [float(x) for x in inner_rest]  # reward, ends
        rewards.append(float(rest[0]))
        np.testing.assert_array_equal(info["features"], inner_info["features"])
    assert -1.0 in rewards and 1.0 in rewards
    assert bench_optimal(inner, params, 0.95, 100) == optimal_return(
        inner, np.asarray(inner.task_weights(params)), 0.95, 100) == pytest.approx(3.5)


def test_deep_gpi_benchmark_scores_each_policy_by_its_own_episode():
    """benchmarks/deep_gpi.py scores a policy on a held-out task w' as w' . (summed phi of one
    greedy episode): that is the env's own return on w' (``interact.episode_return`` with
    ``object_weights`` set) for GPI and a single psi alike, and a training policy on its own
    task is what Algorithm 1's evaluation reported. GPI over copies of one psi is that psi
    improved on w'. Two tasks, one seed, one short round (the benchmark trains for real)."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import deep_gpi

    tasks = np.array([[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0]])
    psi_params, policy_w, own_returns, *_ = deep_gpi.train_tasks(
        "FourRoomObjects-small", jax.random.split(jax.random.key(0), 1), tasks, 1, 300)
    psi_params = jax.tree.map(lambda p: p[:, 0], psi_params)  # [task, ...] of the one seed
    policy_w = policy_w[:, 0]
    transfer = jax.jit(deep_gpi.make_transfer("FourRoomObjects-small", 100))
    for i, w in enumerate(tasks):  # each policy on its own task, as Algorithm 1 scored it
        on_own = transfer(psi_params, policy_w, jnp.append(jnp.asarray(w, jnp.float32), 1.0))
        assert float(on_own[1 + i]) == pytest.approx(own_returns[i, 0], abs=1e-5)

    env, params = envs.make("FourRoomObjects-small")
    high = np.broadcast_to(np.asarray(env.observation_space(params).high), (2 + 4,))
    net = SuccessorHead(env.num_actions, env.num_features, deep_gpi.HIDDEN)
    w_new = jnp.asarray([0.7, -0.3, 0.9, 1.0])
    gpi, *own, improved0, improved1 = (float(x) for x in transfer(psi_params, policy_w, w_new))

    def env_return(act):
        def policy(key, obs):
            x = spi.encode_obs(obs, high, True)
            return act(jax.vmap(lambda p: net.apply(p, x))(psi_params))  # [P, A, N]

        task = params.replace(object_weights=w_new[:3])
        return float(interact.episode_return(env, task, policy, jax.random.key(0), 1, 100))

    same = lambda x: pytest.approx(x, abs=1e-5)  # w' . sum(phi) against a sum of rewards
    assert gpi == same(env_return(lambda psi: jnp.argmax(jnp.max(psi @ w_new, axis=0))))
    assert own[0] == same(env_return(lambda psi: jnp.argmax(psi[0] @ policy_w[0])))
    assert improved1 == same(env_return(lambda psi: jnp.argmax(psi[1] @ w_new)))
    twins = jax.tree.map(lambda p: jnp.stack([p[0], p[0]]), psi_params)
    assert float(transfer(twins, policy_w, w_new)[0]) == improved0
    assert gpi != 0.0 and len({gpi, *own, improved0, improved1}) > 1  # not all idle, not alike


def test_deep_gpi_random_walk_is_the_envs_own_transitions():
    """benchmarks/deep_gpi.py's task-agnostic re-fit data: a uniform random walk per seed whose
    every transition is the exact model's (next state, features, termination), with resets;
    the seeds' walks differ; GPI's practice episodes likewise; the uniform coverage of
    every reachable (s, a); and the walk evened out over the pairs it saw."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import deep_gpi

    walk = jax.tree.map(np.asarray, deep_gpi.random_walk(
        "FourRoomObjects-small", jax.random.split(jax.random.key(0), 2), 400))
    assert walk.obs.shape[:2] == (2, 400)
    env, _ = envs.make("FourRoomObjects-small")
    next_index, phi, terminal = env.tabular_model()
    s = np.asarray(env.obs_to_index(jnp.asarray(walk.obs)))
    s_next = np.asarray(env.obs_to_index(jnp.asarray(walk.next_obs)))
    np.testing.assert_array_equal(s_next, next_index[s, walk.action])
    np.testing.assert_array_equal(walk.phi, phi[s, walk.action])
    np.testing.assert_array_equal(walk.terminated, terminal[s_next])
    assert set(np.unique(walk.action)) == set(range(env.num_actions))
    assert not np.array_equal(walk.action[0], walk.action[1])
    # GPI's practice episodes: valid transitions too, greedy on some practice task's
    # max_i w . psi_i at the non-exploring steps, different per seed
    tasks = np.array([[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0]])
    psi_params = deep_gpi.train_tasks("FourRoomObjects-small",
                                      jax.random.split(jax.random.key(0), 2), tasks, 1, 300)[0]
    practice = jax.tree.map(np.asarray, deep_gpi.gpi_practice(
        "FourRoomObjects-small", psi_params, jax.random.split(jax.random.key(1), 2), 400,
        num_tasks=4))
    assert practice.obs.shape[:2] == (2, 400)
    s_p = np.asarray(env.obs_to_index(jnp.asarray(practice.obs)))
    np.testing.assert_array_equal(env.obs_to_index(jnp.asarray(practice.next_obs)),
                                  next_index[s_p, practice.action])
    np.testing.assert_array_equal(practice.phi, phi[s_p, practice.action])
    assert not np.array_equal(practice.action[0], practice.action[1])
    with pytest.raises(ValueError, match="epsilon=1.5 is invalid"):
        deep_gpi.gpi_practice("FourRoomObjects-small", psi_params, jax.random.split(
            jax.random.key(1), 2), 400, epsilon=1.5)
    # the uniform coverage: every (s, a) of the 185 states reachable from the start (none
    # terminal), once, each the exact model's transition; the walk's states are among them
    cover = jax.tree.map(np.asarray, deep_gpi.reachable_pairs("FourRoomObjects-small"))
    s_cover = np.asarray(env.obs_to_index(jnp.asarray(cover.obs)))
    pairs = set(zip(s_cover.tolist(), cover.action.tolist(), strict=True))
    assert len(pairs) == len(s_cover) == 185 * env.num_actions
    assert not terminal[s_cover].any()
    np.testing.assert_array_equal(env.obs_to_index(jnp.asarray(cover.next_obs)),
                                  next_index[s_cover, cover.action])
    np.testing.assert_array_equal(cover.phi, phi[s_cover, cover.action])
    assert set(s[~terminal[s]].tolist()) <= set(s_cover.tolist())
    # the walk evened out: exactly the (s, a) it saw, each as often as any other, each row
    # one of its own transitions
    even = jax.tree.map(np.asarray, deep_gpi.evened_out("FourRoomObjects-small",
                                                         jax.tree.map(jnp.asarray, walk), 1000))
    assert even.obs.shape[:2] == (2, 1000)
    for i in range(2):
        s_even = np.asarray(env.obs_to_index(jnp.asarray(even.obs[i])))
        seen = s[i] * env.num_actions + walk.action[i]
        counts = np.bincount(s_even * env.num_actions + even.action[i])
        assert set(np.nonzero(counts)[0]) == set(seen.tolist())
        assert counts[counts > 0].max() - counts[counts > 0].min() <= 1
        np.testing.assert_array_equal(env.obs_to_index(jnp.asarray(even.next_obs[i])),
                                      next_index[s_even, even.action[i]])
        np.testing.assert_array_equal(even.phi[i], phi[s_even, even.action[i]])
