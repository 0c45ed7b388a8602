"""C-learning and contrastive losses against the closed-form successor distribution."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from purembrl import classifier, successor
from purembrl.envs import tabular

GAMMA = 0.8


@pytest.fixture
def chain():
    """A random MDP, a random policy and a random goal marginal p(g) > 0."""
    rng = np.random.default_rng(0)
    S, A = 5, 2
    P, _ = tabular.random_mdp(rng, S, A, branching=3)
    pi = rng.dirichlet(np.ones(A), size=S)
    p_goal = rng.dirichlet(np.ones(S) * 2)
    return P, pi, p_goal


def p_future(P, pi, gamma):
    """p_fut(g | s, a) = (1 - g) sum_d g^d P(s_{t+1+d} = g | s, a): ``[S, A, S]``."""
    S, A, _ = P.shape
    M = np.asarray(successor.sr_closed_form(successor.state_chain(P, pi), gamma))
    return np.einsum("sat,tg->sag", P, M)


def test_bce_losses_by_hand():
    c = jax.nn.sigmoid(0.3)
    loss = classifier.mc_classifier_loss(jnp.array(0.3), jnp.array([0.3, -1.0]))
    expected = -np.log(c) - np.log(1 - c) - np.log(1 - jax.nn.sigmoid(-1.0))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    # TD: next-state positive with weight 1 - g; goal label g w / (1 + g w), weight 1 + g w
    w = np.exp(0.5)
    td = classifier.td_classifier_loss(jnp.array(0.3), jnp.array(-0.2), jnp.array(0.5), 0.9)
    cg = jax.nn.sigmoid(-0.2)
    expected = -0.1 * np.log(c) - (0.9 * w * np.log(cg) + np.log(1 - cg))
    np.testing.assert_allclose(td, expected, rtol=1e-5)
    clipped = classifier.td_classifier_loss(jnp.array(0.3), jnp.array(-0.2), jnp.array(5.0),
                                            0.9, max_weight=2.0)
    expected = -0.1 * np.log(c) - (0.9 * 2.0 * np.log(cg) + np.log(1 - cg))
    np.testing.assert_allclose(clipped, expected, rtol=1e-5)
    # finite where C saturates
    assert np.isfinite(classifier.mc_classifier_loss(jnp.array(-200.0), jnp.array([200.0])))
    # the bootstrapped weight is a constant
    g = jax.grad(classifier.td_classifier_loss, argnums=2)(0.3, -0.2, 0.5, 0.9)
    assert float(g) == 0.0


def td_exact_logits(P, pi, p_goal):
    """Expected TD C-learning on a logit table, semi-gradient Adam steps to convergence."""
    S, A, _ = P.shape
    P_j, pi_j, pg = (jnp.asarray(x, jnp.float32) for x in (P, pi, p_goal))

    def loss(logits):
        target = jax.lax.stop_gradient(logits)
        # log E_{a' ~ pi(s')} w(s', a', g): the loss is linear in w, so this is exact
        log_w = jax.nn.logsumexp(target + jnp.log(pi_j)[:, :, None], axis=1)  # [S', G]

        def one(s, a):
            per = jax.vmap(jax.vmap(classifier.td_classifier_loss,
                                    in_axes=(None, 0, 0, None)),  # goals g
                           in_axes=(0, None, 0, None))(            # next states s'
                logits[s, a], logits[s, a], log_w, GAMMA)           # [S', G]
            return jnp.einsum("t,tg,g->", P_j[s, a], per, pg)

        return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(
            jnp.arange(S), jnp.arange(A)).sum()

    opt = optax.adam(0.05)

    def step(carry, _):
        logits, state = carry
        updates, state = opt.update(jax.grad(loss)(logits), state)
        return (optax.apply_updates(logits, updates), state), None

    logits = jnp.zeros((S, A, S))
    (logits, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=4000))(
        (logits, opt.init(logits)))
    return logits


def test_td_c_learning_fixed_point_is_the_successor_ratio(chain):
    """Expected TD C-learning on a logit table, semi-gradient descent: C / (1 - C) converges to
    p_fut(g | s, a) / p(g) (the paper's Lemma; the class ratio is 1)."""
    P, pi, p_goal = chain
    logits = td_exact_logits(P, pi, p_goal)
    pg = jnp.asarray(p_goal, jnp.float32)
    ratio = np.asarray(classifier.density_ratio(jax.nn.sigmoid(logits)))
    expected = p_future(P, pi, GAMMA) / p_goal
    np.testing.assert_allclose(ratio, expected, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(np.exp(classifier.log_density_ratio(logits)), ratio, rtol=1e-4)
    # and p_fut itself, given the marginal: a distribution over goals
    fut = np.asarray(classifier.future_density(jax.nn.sigmoid(logits), pg))
    np.testing.assert_allclose(fut.sum(-1), 1.0, atol=2e-3)


def test_mc_c_learning_from_sampled_trajectories(chain):
    """Monte Carlo C-learning with k = 2 negatives on samples of one long trajectory: the
    learned k C / (1 - C) matches p_fut / p within sampling error."""
    P, pi, p_goal = chain
    S, A, _ = P.shape
    rng = np.random.default_rng(1)
    T = 200_000
    states, actions = np.zeros(T + 1, int), np.zeros(T, int)
    for t in range(T):
        actions[t] = rng.choice(A, p=pi[states[t]])
        states[t + 1] = rng.choice(S, p=P[states[t], actions[t]])
    obs, act = jnp.asarray(states[:-1]), jnp.asarray(actions)
    next_obs, pg = jnp.asarray(states[1:]), jnp.asarray(p_goal, jnp.float32)
    k, batch = 2, 4096

    def batch_loss(logits, key):
        key_t, key_f, key_n = jax.random.split(key, 3)
        t = jax.random.randint(key_t, (batch,), 0, T - 500)
        goal = next_obs[classifier.future_offsets(key_f, t, T, GAMMA)]
        neg = jax.random.choice(key_n, S, (batch, k), p=pg)
        s, a = obs[t], act[t]
        per = jax.vmap(classifier.mc_classifier_loss)(logits[s, a, goal],
                                                      logits[s[:, None], a[:, None], neg])
        return per.mean()

    opt = optax.adam(0.02)

    def step(carry, key):
        logits, state = carry
        updates, state = opt.update(jax.grad(batch_loss)(logits, key), state)
        return (optax.apply_updates(logits, updates), state), None

    logits = jnp.zeros((S, A, S))
    keys = jax.random.split(jax.random.key(0), 3000)
    (logits, _), _ = jax.jit(lambda c, ks: jax.lax.scan(step, c, ks))((logits, opt.init(logits)),
                                                                     keys)
    ratio = np.asarray(classifier.density_ratio(jax.nn.sigmoid(logits), k))
    expected = p_future(P, pi, GAMMA) / p_goal
    # compare where the pair (s, a) is common enough for the estimate to have settled
    visits = np.bincount(states[:-1] * A + actions, minlength=S * A).reshape(S, A) / T
    common = visits > 0.03
    rel = np.abs(ratio - expected)[common] / expected[common]
    assert np.median(rel) < 0.05 and rel.max() < 0.25, (np.median(rel), rel.max())
    # the MC (on-policy, sampled) and TD (off-policy, exact) estimators agree
    td_ratio = np.asarray(classifier.density_ratio(jax.nn.sigmoid(td_exact_logits(P, pi,
                                                                                  p_goal))))
    rel_td = np.abs(ratio - td_ratio)[common] / td_ratio[common]
    assert np.median(rel_td) < 0.05 and rel_td.max() < 0.25


def test_infonce_loss_by_hand_and_its_optimum():
    logits = jnp.array([[2.0, 0.0], [1.0, 1.0]])
    expected = -0.5 * (np.log(np.exp(2) / (np.exp(2) + 1)) + np.log(0.5))
    np.testing.assert_allclose(classifier.infonce_loss(logits), expected, rtol=1e-6)
    with pytest.raises(AssertionError):
        classifier.infonce_loss(jnp.zeros((2, 3)))
    # with a critic table f[x, g] trained on pairs from a known joint, f(x, g) - log p(g | x)
    # + log p(g) is constant in g for each x
    rng = np.random.default_rng(2)
    joint = rng.dirichlet(np.ones(12)).reshape(3, 4)
    px, pg = joint.sum(1), joint.sum(0)
    flat = jnp.asarray(joint.reshape(-1), jnp.float32)

    def loss(f, key):
        idx = jax.random.choice(key, 12, (512,), p=flat)
        x, g = idx // 4, idx % 4
        return classifier.infonce_loss(f[x][:, g])

    opt = optax.adam(0.05)

    def step(carry, key):
        f, state = carry
        updates, state = opt.update(jax.grad(loss)(f, key), state)
        return (optax.apply_updates(f, updates), state), None

    f = jnp.zeros((3, 4))
    (f, _), _ = jax.jit(lambda c, ks: jax.lax.scan(step, c, ks))(
        (f, opt.init(f)), jax.random.split(jax.random.key(0), 3000))
    pmi = np.log(joint / px[:, None] / pg[None, :])
    centred = np.asarray(f) - pmi
    centred -= centred.mean(1, keepdims=True)
    assert np.abs(centred).max() < 0.15, np.abs(centred).max()


def test_future_offsets_are_geometric_and_stay_in_the_episode():
    key = jax.random.key(0)
    t = jnp.zeros(200_000, jnp.int32)
    idx = np.asarray(classifier.future_offsets(key, t, jnp.int32(10_000), 0.9))
    assert idx.min() == 0  # d = 0: the next state itself
    np.testing.assert_allclose(idx.mean(), 0.9 / 0.1, rtol=0.03)
    np.testing.assert_allclose(np.mean(idx == 0), 0.1, atol=0.005)
    short = np.asarray(classifier.future_offsets(key, jnp.full(1000, 5), jnp.int32(8), 0.9))
    assert short.min() >= 5 and short.max() == 7


def test_binary_nce_loss_by_hand_and_no_free_row_term():
    """Contrastive RL's binary NCE: sigmoid cross-entropy with the diagonal as positives,
    averaged over the B x B pairs. Shifting one row's logits by a constant leaves InfoNCE
    unchanged (its free per-(s, a) term) but not the NCE loss (its logit is pinned)."""
    logits = jnp.array([[2.0, -1.0], [0.5, 1.5]])
    sp = jax.nn.softplus
    expected = (sp(-2.0) + sp(-1.0) + sp(0.5) + sp(-1.5)) / 4
    np.testing.assert_allclose(classifier.binary_nce_loss(logits), expected, rtol=1e-6)
    shifted = logits.at[0].add(3.0)
    np.testing.assert_allclose(classifier.infonce_loss(shifted), classifier.infonce_loss(logits),
                               rtol=1e-6)
    assert abs(float(classifier.binary_nce_loss(shifted) - classifier.binary_nce_loss(logits))) \
        > 0.1
    with pytest.raises(AssertionError):
        classifier.binary_nce_loss(jnp.zeros((2, 3)))
