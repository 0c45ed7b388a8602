import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import value
from purembrl.learners import DQNConfig, SACConfig, make_dqn, make_sac, squashed_gaussian
from purembrl.types import Transition

f = lambda *x: jnp.asarray(x, jnp.float32) if len(x) > 1 else jnp.asarray(x[0], jnp.float32)


def test_sac_target_against_hand_computed_values():
    target = value.sac_target(f(1.0), jnp.array(False), 0.9, f(2.0, 3.0), f(-1.0), 0.5)
    assert float(target) == pytest.approx(1 + 0.9 * (2.0 + 0.5))  # min Q, minus alpha log pi
    terminal = value.sac_target(f(1.0), jnp.array(True), 0.9, f(2.0, 3.0), f(-1.0), 0.5)
    assert float(terminal) == pytest.approx(1.0)


def test_sac_losses_against_hand_computed_values():
    assert float(value.sac_critic_loss(f(1.0, 2.0), f(3.0))) == pytest.approx(2.5)
    assert float(value.sac_actor_loss(f(1.0, 2.0), f(-0.5), 0.2)) == pytest.approx(-1.1)
    loss, grad = jax.value_and_grad(value.sac_temperature_loss)(f(0.3), f(-2.0), -1.0)
    assert float(loss) == pytest.approx(0.9) and float(grad) == pytest.approx(3.0)


def test_q_targets_against_hand_computed_values():
    online, target = f(1.0, 5.0, 2.0), f(10.0, 20.0, 30.0)
    assert float(value.double_q_target(f(1.0), jnp.array(0), 0.5, online, target)) == 11.0
    assert float(value.q_learning_target(f(1.0), jnp.array(0), 0.5, target)) == 16.0
    assert float(value.double_q_target(f(1.0), jnp.array(1), 0.5, online, target)) == 1.0


def test_huber_and_td_loss():
    assert float(value.huber(f(0.5))) == pytest.approx(0.125)
    assert float(value.huber(f(-3.0))) == pytest.approx(2.5)
    assert float(value.td_loss(f(1.0), f(4.0), "mse")) == pytest.approx(4.5)
    assert float(value.td_loss(f(1.0), f(4.0), "huber")) == pytest.approx(2.5)
    grad = jax.grad(lambda t: value.td_loss(f(1.0), t))(f(4.0))
    assert float(grad) == 0.0  # the target is held constant
    with pytest.raises(ValueError, match="kind"):
        value.td_loss(f(1.0), f(2.0), "l1")


def test_shapes_are_checked_at_the_boundary():
    with pytest.raises(AssertionError):
        value.sac_target(f(1.0), jnp.array(False), 0.9, f(2.0), f(-1.0), 0.5)  # next_q rank 0
    with pytest.raises(AssertionError):
        value.double_q_target(f(1.0), jnp.array(0), 0.5, f(1.0, 2.0), f(1.0, 2.0, 3.0))


def test_target_updates():
    target, online = {"w": f(0.0, 10.0)}, {"w": f(10.0, 0.0)}
    np.testing.assert_allclose(value.polyak(target, online, 0.1)["w"], [1.0, 9.0])
    np.testing.assert_array_equal(value.periodic_update(target, online, 6, 3)["w"], [10.0, 0.0])
    np.testing.assert_array_equal(value.periodic_update(target, online, 7, 3)["w"], [0.0, 10.0])


def test_losses_under_jit_and_vmap():
    batched = jax.jit(jax.vmap(value.sac_target, in_axes=(0, 0, None, 0, 0, None)))
    out = batched(f(1.0, 2.0), jnp.array([False, True]), 0.9, jnp.ones((2, 2)), f(0.0, 0.0), 0.1)
    np.testing.assert_allclose(out, [1.9, 2.0])


def test_squashed_gaussian_log_prob_has_the_tanh_correction():
    mean, log_std = f(0.3, -0.2), f(-0.5, 0.1)
    dist = squashed_gaussian(mean, log_std)
    u = jnp.array([0.7, -1.1])
    a = jnp.tanh(u)
    std = jnp.exp(log_std)
    normal = -0.5 * (((u - mean) / std) ** 2 + 2 * log_std + math.log(2 * math.pi))
    expected = jnp.sum(normal - jnp.log(1 - a ** 2))
    assert float(dist.log_prob(a)) == pytest.approx(float(expected), rel=1e-4)


def batch_of(obs_dim, action, n=32, key=0):
    k = jax.random.key(key)
    return Transition(obs=jax.random.normal(k, (n, obs_dim)), action=action,
                      reward=jnp.ones(n), next_obs=jax.random.normal(k, (n, obs_dim)) * 0.5,
                      terminated=jnp.zeros(n, bool))


def test_sac_learner_acts_within_bounds_and_updates():
    learner = make_sac(SACConfig(hidden_sizes=(32, 32)), 3, np.array([-2.0]), np.array([2.0]))
    state = learner.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (500, 3)) * 5
    actions = learner.act(state, jax.random.key(2), obs)
    assert actions.shape == (500, 1) and float(jnp.abs(actions).max()) <= 2.0
    deterministic = learner.act(state, jax.random.key(3), obs, explore=False)
    np.testing.assert_array_equal(deterministic, learner.act(state, jax.random.key(4), obs,
                                                             explore=False))
    batch = batch_of(3, jax.random.uniform(jax.random.key(5), (32, 1), minval=-2, maxval=2))
    new, info = jax.jit(learner.update)(state, batch, jax.random.key(6))
    assert all(np.isfinite(float(v)) for v in info.values())
    assert int(new.steps) == 1 and float(info["alpha"]) < 1.0  # entropy above target: alpha falls


def test_dqn_learner_fits_a_constant_reward_chain():
    learner = make_dqn(DQNConfig(hidden_sizes=(16,), gamma=0.9, tau=0.05), 4, 2)
    state = learner.init(jax.random.key(0))
    batch = Transition(obs=jnp.ones((64, 4)), action=jnp.zeros(64, jnp.int32),
                       reward=jnp.ones(64), next_obs=jnp.ones((64, 4)),
                       terminated=jnp.zeros(64, bool))
    update = jax.jit(learner.update)
    for i in range(1500):
        state, info = update(state, batch, jax.random.key(i))
    assert float(info["q_mean"]) == pytest.approx(10.0, rel=0.02)  # 1 / (1 - 0.9)
    greedy = learner.act(state, jax.random.key(0), jnp.ones((5, 4)), explore=False)
    assert greedy.shape == (5,)
    explored = learner.act(state, jax.random.key(1), jnp.ones((1000, 4)), True, 0)
    assert 400 < int(explored.sum()) < 600  # epsilon 1 at step 0: uniform over the 2 actions
    late = learner.act(state, jax.random.key(1), jnp.ones((1000, 4)), True, 10_000)
    assert int((late != greedy[0]).sum()) < 60  # epsilon 0.05 after the decay: mostly greedy


def test_expected_target_with_identical_samples_is_the_one_sample_target():
    one = value.q_learning_target(jnp.array(0.5), jnp.array(False), 0.9, jnp.array([2.0, 3.0]))
    k = value.expected_target(jnp.full(4, 0.5), jnp.zeros(4, bool), 0.9, jnp.full(4, 3.0))
    np.testing.assert_allclose(k, one, rtol=1e-6)
    mixed = value.expected_target(jnp.array([1.0, 0.0]), jnp.array([True, False]), 0.5,
                              jnp.array([10.0, 4.0]))
    np.testing.assert_allclose(mixed, 0.5 * (1.0 + 0.0 + 0.5 * 4.0), rtol=1e-6)


def test_mbve_targets_hand_unrolled_and_one_step_at_h0():
    g = 0.9
    r = jnp.array([1.0, 2.0, -1.0, 0.5])
    d = jnp.zeros(4, bool)
    boot = jnp.array(10.0)
    t = np.asarray(value.mbve_targets(r, d, g, boot))
    expected = [1 + g * 2 + g ** 2 * -1 + g ** 3 * 0.5 + g ** 4 * 10,
                2 + g * -1 + g ** 2 * 0.5 + g ** 3 * 10, -1 + g * 0.5 + g ** 2 * 10, 0.5 + g * 10]
    np.testing.assert_allclose(t, expected, rtol=1e-6)
    # a termination after step 1 cuts the rest of the path
    cut = np.asarray(value.mbve_targets(r, jnp.array([False, True, False, False]), g, boot))
    np.testing.assert_allclose(cut[:2], [1 + g * 2, 2], rtol=1e-6)
    # H = 0: the one-step TD target
    h0 = value.mbve_targets(r[:1], d[:1], g, boot)
    np.testing.assert_allclose(h0, [1 + g * 10], rtol=1e-6)


def test_naf_q_is_maximised_at_mu_and_matches_the_quadratic_form():
    rng = np.random.default_rng(0)
    d = 3
    entries = jnp.asarray(rng.standard_normal(d * (d + 1) // 2), jnp.float32)
    mu = jnp.asarray(rng.standard_normal(d), jnp.float32)
    L, P = value.naf_matrix(entries, d)
    assert np.allclose(np.triu(np.asarray(L), 1), 0.0)
    assert (np.linalg.eigvalsh(np.asarray(P)) > 0).all()
    np.testing.assert_allclose(value.naf_q(jnp.array(1.5), mu, entries, mu), 1.5)
    np.testing.assert_allclose(jax.grad(lambda a: value.naf_q(jnp.array(1.5), mu, entries, a))(mu),
                               0.0, atol=1e-6)
    for _ in range(20):
        a = jnp.asarray(rng.standard_normal(d), jnp.float32)
        q = value.naf_q(jnp.array(1.5), mu, entries, a)
        diff = np.asarray(a - mu)
        np.testing.assert_allclose(q, 1.5 - 0.5 * diff @ np.asarray(P) @ diff, rtol=1e-5)
        assert float(q) <= 1.5


def test_learners_take_k_next_state_samples_and_k_identical_equals_one():
    """Deep Dyna's batches: K sampled s' per (s, a). With K identical copies, DQN's update is
    the one-sample update; SAC's runs and its critic moves."""
    B, K, d = 16, 5, 4
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.standard_normal((B, d)), jnp.float32)
    next_obs = jnp.asarray(rng.standard_normal((B, d)), jnp.float32)
    reward = jnp.asarray(rng.standard_normal(B), jnp.float32)
    term = jnp.asarray(rng.random(B) < 0.2)
    tile = lambda x: jnp.repeat(x[:, None], K, axis=1)  # noqa: E731
    for double_q in (True, False):
        learner = make_dqn(DQNConfig(double_q=double_q), d, 3)
        state = learner.init(jax.random.key(0))
        action = jnp.asarray(rng.integers(0, 3, B), jnp.int32)
        one = Transition(obs, action, reward, next_obs, term)
        many = Transition(obs, action, tile(reward), tile(next_obs), tile(term))
        s1, i1 = learner.update(state, one, jax.random.key(1))
        sk, ik = learner.update(state, many, jax.random.key(1))
        np.testing.assert_allclose(i1["q_loss"], ik["q_loss"], rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                     s1.params, sk.params)
    sac = make_sac(SACConfig(hidden_sizes=(32, 32)), d, -np.ones(2), np.ones(2))
    state = sac.init(jax.random.key(0))
    action = jnp.asarray(rng.uniform(-1, 1, (B, 2)), jnp.float32)
    many = Transition(obs, action, tile(reward), tile(next_obs), tile(term))
    new, info = jax.jit(sac.update)(state, many, jax.random.key(2))
    assert np.isfinite(float(info["critic_loss"]))
    assert not np.allclose(jax.tree.leaves(new.critic)[0], jax.tree.leaves(state.critic)[0])


def test_observation_normalisation_wrapper_keeps_running_statistics():
    """normalize_observations around a recording learner: after minibatches of observations
    with scales 1e3 and 1e-2, its mean / std are those of every observation seen (parallel
    variance merge), the inner learner gets normalised obs and next_obs, and act normalises."""
    from purembrl.learners import Learner, normalize_observations

    seen = {}
    inner = Learner(init=lambda key: jnp.zeros(()),
                    update=lambda s, batch, key: (s + 1, {"obs": batch.obs,
                                                          "next_obs": batch.next_obs}),
                    act=lambda s, key, obs, explore=True, step=0: obs)
    learner = normalize_observations(inner, obs_dim=2)
    state = learner.init(jax.random.key(0))
    np.testing.assert_allclose(learner.act(state, None, jnp.ones((1, 2))), [[1.0, 1.0]])
    scale = jnp.array([1e3, 1e-2])
    all_obs = []
    for i in range(5):
        obs = (jax.random.normal(jax.random.key(i), (64, 2)) + 3.0) * scale
        batch = Transition(obs=obs, action=jnp.zeros((64, 1)), reward=jnp.zeros(64),
                           next_obs=obs, terminated=jnp.zeros(64, bool))
        state, seen = learner.update(state, batch, jax.random.key(i))
        all_obs.append(obs)
    all_obs = jnp.concatenate(all_obs)
    np.testing.assert_allclose(state.mean, all_obs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(jnp.sqrt(state.m2 / state.count), all_obs.std(0), rtol=1e-4)
    assert float(state.count) == 320 and int(state.inner) == 5
    np.testing.assert_allclose(seen["obs"], seen["next_obs"])
    assert float(jnp.abs(seen["obs"]).max()) < 10  # unit scale, whatever the raw scale
    np.testing.assert_allclose(learner.act(state, None, all_obs.mean(0)[None]), 0.0, atol=1e-4)


def test_pairwise_sum_is_the_fixed_halving_order_for_any_row_count():
    """``pairwise_sum`` adds the zero-padded rows in halvings ``x[:h] + x[h:]``: bit for bit the
    NumPy float32 sum in that order (elementwise adds only, so no CPU's vector width can change
    it), and the plain sum to float rounding, for counts that are and are not powers of two,
    under jit and vmap."""
    from purembrl.learners.normalize import pairwise_sum

    def halvings(x):
        size = 1 << max(len(x) - 1, 0).bit_length()
        x = np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])
        while len(x) > 1:
            x = x[:len(x) // 2] + x[len(x) // 2:]
        return x[0]

    rng = np.random.default_rng(0)
    for rows in (1, 2, 3, 7, 16, 100, 256):
        x = (rng.standard_normal((rows, 3)) * 10.0 ** rng.integers(-3, 4, 3)).astype(np.float32)
        got = np.asarray(jax.jit(pairwise_sum)(jnp.asarray(x)))
        np.testing.assert_array_equal(got, halvings(x))
        np.testing.assert_allclose(got, x.astype(np.float64).sum(0), rtol=1e-5)
    batch = rng.standard_normal((4, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(jax.vmap(pairwise_sum)(jnp.asarray(batch))),
                                  np.stack([halvings(b) for b in batch]))


def test_normalisation_divides_by_an_exact_square_root_on_every_cpu():
    """The normalised inputs are ``(obs - mean) / sqrt(var + eps)`` with a correctly rounded
    square root and division: no ``rsqrt`` in the compiled update or act (XLA's CPU rsqrt is
    the hardware's approximation, whose bits differ between Intel and AMD)."""
    from purembrl.learners.normalize import normalize_observations, normalized

    learner = normalize_observations(make_sac(SACConfig(hidden_sizes=(8,)), 3, -jnp.ones(1),
                                              jnp.ones(1)), 3)
    state = learner.init(jax.random.key(0))
    batch = Transition(obs=jnp.ones((4, 3)), action=jnp.zeros((4, 1)), reward=jnp.zeros(4),
                       next_obs=jnp.ones((4, 3)), terminated=jnp.zeros(4))
    update = jax.jit(learner.update).lower(state, batch, jax.random.key(1)).compile().as_text()
    act = jax.jit(learner.act).lower(state, jax.random.key(1), batch.obs).compile().as_text()
    assert " sqrt(" in update and " rsqrt(" not in update and " rsqrt(" not in act
    stats = state.replace(mean=jnp.array([1.0, 2.0, 3.0]), m2=jnp.array([4.0, 9.0, 2.0]),
                          count=jnp.float32(3.0))
    obs = jnp.array([[0.5, -1.0, 7.0]])
    std = np.sqrt(np.float32([4.0, 9.0, 2.0]) / np.float32(3.0) + np.float32(1e-8))
    want = (np.float32([[0.5, -1.0, 7.0]]) - np.float32([1.0, 2.0, 3.0])) / std
    np.testing.assert_array_equal(jax.jit(normalized)(stats, obs), want)
