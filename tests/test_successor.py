"""Successor representations and features against closed forms (purembrl.successor)."""

import itertools

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import successor
from purembrl.envs import tabular

GAMMA = 0.9


def random_policy(rng, S, A):
    return rng.dirichlet(np.ones(A), size=S)


@pytest.fixture
def mdp():
    rng = np.random.default_rng(0)
    P, r = tabular.random_mdp(rng, 12, 3, branching=4)
    return P, r, random_policy(rng, 12, 3)


def bellman_sweeps(P, r, pi, gamma, iters=2000):
    """Iterative policy evaluation, independent of the linear algebra under test."""
    v = np.zeros(r.shape[0])
    for _ in range(iters):
        v = np.einsum("sa,sa->s", pi, r + gamma * np.einsum("sat,t->sa", P, v))
    return v


def test_random_mdp_is_stochastic(mdp):
    P, r, pi = mdp
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
    assert ((P > 0).sum(-1) == 4).all()


@pytest.mark.parametrize("normalised", [True, False])
def test_state_sr_gives_policy_value(mdp, normalised):
    P, r, pi = mdp
    M = np.asarray(successor.sr_closed_form(successor.state_chain(P, pi), GAMMA, normalised))
    if normalised:
        np.testing.assert_allclose(M.sum(1), 1.0, atol=1e-5)
        assert (M >= -1e-7).all()
    else:
        np.testing.assert_allclose(M.sum(1), 1.0 / (1 - GAMMA), rtol=1e-5)
    r_pi = np.einsum("sa,sa->s", pi, r)
    v = M @ r_pi / ((1 - GAMMA) if normalised else 1.0)
    np.testing.assert_allclose(v, bellman_sweeps(P, r, pi, GAMMA), atol=1e-4)
    v_exact, _ = tabular.policy_evaluation(P, r, pi, GAMMA)
    np.testing.assert_allclose(v, v_exact, atol=1e-4)


def test_state_action_sr_gives_q(mdp):
    P, r, pi = mdp
    S, A = r.shape
    M = np.asarray(successor.sr_closed_form(successor.state_action_chain(P, pi), GAMMA))
    np.testing.assert_allclose(M.sum(1), 1.0, atol=1e-5)
    # row (s, a) of M starts with the (1 - g) mass on (s, a) itself
    assert (np.diag(M) >= 1 - GAMMA - 1e-6).all()
    q = (M @ r.reshape(-1) / (1 - GAMMA)).reshape(S, A)
    _, q_exact = tabular.policy_evaluation(P, r, pi, GAMMA)
    np.testing.assert_allclose(q, q_exact, atol=1e-4)


def test_sr_closed_form_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        successor.sr_closed_form(jnp.ones((3, 4)) / 4, 0.9)


def test_expected_td_converges_to_closed_form(mdp):
    P, r, pi = mdp
    P_pi = jnp.asarray(successor.state_action_chain(P, pi), jnp.float32)
    closed = successor.sr_closed_form(P_pi, GAMMA)

    def sweep(M, _):
        return successor.sr_expected_td(M, P_pi, GAMMA, 1.0), None

    M, _ = jax.lax.scan(sweep, jnp.zeros_like(P_pi), None, length=300)
    assert float(jnp.max(jnp.abs(M - closed))) < 1e-5
    # a smaller step converges to the same fixed point
    M_half, _ = jax.lax.scan(lambda M, _: (successor.sr_expected_td(M, P_pi, GAMMA, 0.5), None),
                             jnp.zeros_like(P_pi), None, length=600)
    assert float(jnp.max(jnp.abs(M_half - closed))) < 1e-5


def test_sampled_td_converges_within_tolerance():
    """Sampled TD(0) on one long trajectory of a small chain, with a decaying step size."""
    rng = np.random.default_rng(1)
    S = 6
    P_pi = rng.dirichlet(np.ones(S), size=S)
    closed = np.asarray(successor.sr_closed_form(jnp.asarray(P_pi), 0.8))
    P_cum = jnp.asarray(np.cumsum(P_pi, axis=1), jnp.float32)
    steps = 200_000

    def step(carry, t):
        M, s, key = carry
        key, sub = jax.random.split(key)
        s_next = jnp.minimum(jnp.searchsorted(P_cum[s], jax.random.uniform(sub)), S - 1)
        lr = 1.0 / (1.0 + t / 2000.0)
        M = successor.sr_td_update(M, s, s_next, 0.8, lr)
        return (M, s_next, key), None

    (M, _, _), _ = jax.jit(lambda: jax.lax.scan(
        step, (jnp.zeros((S, S)), jnp.int32(0), jax.random.key(0)),
        jnp.arange(steps, dtype=jnp.float32)))()
    err = np.abs(np.asarray(M) - closed).max()
    assert err < 0.03, err
    np.testing.assert_allclose(np.asarray(M).sum(1), 1.0, atol=0.02)


def test_sampled_td_terminal_stops_the_future():
    M = jnp.full((3, 3), 0.3)
    out = successor.sr_td_update(M, 0, 2, 0.9, 1.0, terminated=True)
    np.testing.assert_allclose(out[0], [0.1, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(out[1:], M[1:])
    unnorm = successor.sr_td_update(M, 1, 2, 0.9, 1.0, normalised=False)
    np.testing.assert_allclose(unnorm[1], [0.27, 1.27, 0.27], atol=1e-6)


def test_sf_target_and_loss_by_hand():
    phi = jnp.array([1.0, 0.0, 2.0])
    nxt = jnp.array([0.5, 1.0, 0.0])
    t = successor.sf_target(phi, nxt, jnp.array(False), 0.9)
    np.testing.assert_allclose(t, [0.1 + 0.45, 0.9, 0.2], atol=1e-6)
    t_term = successor.sf_target(phi, nxt, jnp.array(True), 0.9, normalised=False)
    np.testing.assert_allclose(t_term, phi)
    psi = jnp.array([0.0, 1.0, 0.0])
    loss = successor.sf_td_loss(psi, phi, nxt, jnp.array(False), 0.9)
    np.testing.assert_allclose(loss, 0.5 * (0.55 ** 2 + 0.1 ** 2 + 0.2 ** 2), rtol=1e-6)
    # the target is constant: the gradient flows through psi only
    g_next = jax.grad(lambda n: successor.sf_td_loss(psi, phi, n, jnp.array(False), 0.9))(nxt)
    np.testing.assert_allclose(g_next, 0.0)
    g_psi = jax.grad(lambda p: successor.sf_td_loss(p, phi, nxt, jnp.array(False), 0.9))(psi)
    np.testing.assert_allclose(g_psi, psi - t, atol=1e-6)


def test_sf_loss_rejects_mismatched_shapes():
    with pytest.raises(AssertionError):
        successor.sf_td_loss(jnp.zeros(3), jnp.zeros(4), jnp.zeros(4), jnp.array(0.0), 0.9)


def test_tabular_sf_equals_sr_times_phi(mdp):
    """psi = M phi: the SF of one-hot features is the SR; q_from_sf gives Q for r = w . phi."""
    P, _, pi = mdp
    S, A = pi.shape
    rng = np.random.default_rng(3)
    phi = rng.standard_normal((S * A, 5))
    w = rng.standard_normal(5)
    M = successor.sr_closed_form(successor.state_action_chain(P, pi), GAMMA)
    psi = (M @ phi).reshape(S, A, 5)
    q = successor.q_from_sf(psi, jnp.asarray(w), GAMMA)
    _, q_exact = tabular.policy_evaluation(P, (phi @ w).reshape(S, A), pi, GAMMA)
    np.testing.assert_allclose(q, q_exact, atol=1e-4)
    q_unnorm = successor.q_from_sf(psi / (1 - GAMMA), jnp.asarray(w), GAMMA, normalised=False)
    np.testing.assert_allclose(q_unnorm, q_exact, atol=1e-4)


def test_fit_reward_weights_recovers_planted_w():
    rng = np.random.default_rng(4)
    phi = rng.standard_normal((500, 6)).astype(np.float32)
    w_true = rng.standard_normal(6).astype(np.float32)
    r = phi @ w_true
    w = successor.fit_reward_weights(jnp.asarray(phi), jnp.asarray(r))
    np.testing.assert_allclose(w, w_true, atol=1e-4)
    # masked rows (garbage in an unfilled buffer) do not count
    r_bad = r.copy()
    r_bad[400:] = 1e3
    mask = np.arange(500) < 400
    w_masked = successor.fit_reward_weights(jnp.asarray(phi), jnp.asarray(r_bad), jnp.asarray(mask))
    np.testing.assert_allclose(w_masked, w_true, atol=1e-4)

    phi_j, r_j = jnp.asarray(phi), jnp.asarray(r)

    def sgd(w, idx):
        return successor.reward_weights_sgd(w, phi_j[idx], r_j[idx], 0.1), None

    idx = jax.random.randint(jax.random.key(0), (3000, 32), 0, 500)
    w_sgd, _ = jax.lax.scan(sgd, jnp.zeros(6), idx)
    np.testing.assert_allclose(w_sgd, w_true, atol=1e-3)


def test_normalised_reward_weight_step():
    """NLMS: one step moves w . phi a fraction lr of the way to r whatever |phi|; plain SGD's
    error along phi is multiplied by 1 - lr |phi|^2 and grows once that is below -1. For
    one-hot features the two steps are the same numbers."""
    w = jnp.array([0.2, -0.1, 0.4])
    for phi in (jnp.array([0.0, 1.0, 0.0]), jnp.zeros(3)):
        np.testing.assert_array_equal(successor.reward_weights_sgd(w, phi, 0.7, 0.5),
                                      successor.reward_weights_sgd(w, phi, 0.7, 0.5, True))
    phi, r = jnp.ones(3) * 1.2, 1.0  # |phi|^2 = 4.32: 1 - 0.5 * 4.32 = -1.16
    step = successor.reward_weights_sgd(w, phi, r, 0.5, normalised=True)
    np.testing.assert_allclose(r - step @ phi, 0.5 * (r - w @ phi), rtol=1e-6)
    plain = w
    for _ in range(20):
        plain = successor.reward_weights_sgd(plain, phi, r, 0.5)
    assert abs(r - plain @ phi) > 10 * abs(r - w @ phi)


def test_multitask_feature_loss_regresses_each_task_on_its_own_output():
    """Barreto et al.'s multi-task fit with identity weights: the loss is zero when output j is
    task j's reward, and only the output of each transition's task gets a gradient."""
    phi = jnp.array([[0.5, 9.0], [7.0, -1.0], [0.0, 0.0]])
    reward, task = jnp.array([0.5, -1.0, 0.0]), jnp.array([0, 1, 1])
    assert float(successor.multitask_feature_loss(phi, reward, task)) == 0.0
    grad = jax.grad(successor.multitask_feature_loss)(phi + 1.0, reward, task)
    np.testing.assert_allclose(grad, [[1 / 3, 0.0], [0.0, 1 / 3], [0.0, 1 / 3]], rtol=1e-6)
    with pytest.raises(AssertionError):
        successor.multitask_feature_loss(phi, reward, task[:2])


def test_gpi_action_against_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(20):
        psis = rng.standard_normal((4, 3, 5)).astype(np.float32)
        w = rng.standard_normal(5).astype(np.float32)
        best, best_a = -np.inf, None
        for i, a in itertools.product(range(4), range(3)):
            v = float(psis[i, a] @ w)
            if v > best:
                best, best_a = v, a
        assert int(successor.gpi_action(jnp.asarray(psis), jnp.asarray(w))) == best_a
        valid = np.array([True, False, True, False])
        best, best_a = -np.inf, None
        for i, a in itertools.product([0, 2], range(3)):
            v = float(psis[i, a] @ w)
            if v > best:
                best, best_a = v, a
        got = successor.gpi_action(jnp.asarray(psis), jnp.asarray(w), jnp.asarray(valid))
        assert int(got) == best_a
    # vmapped over states
    psis = jnp.asarray(rng.standard_normal((7, 4, 3, 5)), jnp.float32)
    actions = jax.vmap(successor.gpi_action, in_axes=(0, None))(psis, jnp.ones(5))
    assert actions.shape == (7,)


def test_gpi_improvement_inequality_on_random_mdps():
    """Barreto 2017, Theorem 1 with exact psi: the GPI policy is at least as good as every
    constituent policy, at every state, for any w."""
    rng = np.random.default_rng(6)
    for trial in range(10):
        S, A, N, num_policies = 10, 3, 4, 5
        P, _ = tabular.random_mdp(rng, S, A, branching=3)
        phi = rng.standard_normal((S, A, N))
        policies = [np.eye(A)[rng.integers(0, A, S)] for _ in range(num_policies)]
        psis = np.stack([
            (np.asarray(successor.sr_closed_form(successor.state_action_chain(P, pi), GAMMA))
             @ phi.reshape(S * A, N)).reshape(S, A, N) for pi in policies], axis=1)
        w = rng.standard_normal(N)
        r = phi @ w
        gpi = jax.vmap(successor.gpi_action, in_axes=(0, None))(jnp.asarray(psis), jnp.asarray(w))
        v_gpi, _ = tabular.policy_evaluation(P, r, np.eye(A)[np.asarray(gpi)], GAMMA)
        v_best = np.max([tabular.policy_evaluation(P, r, pi, GAMMA)[0] for pi in policies], axis=0)
        assert (v_gpi >= v_best - 1e-4).all(), (trial, (v_gpi - v_best).min())


def test_four_rooms_mdp_matches_gymnax_samples():
    env, params = gymnax.make("FourRooms-misc")
    P, R, terminal = tabular.four_rooms_mdp(env, params)
    np.testing.assert_allclose(P.sum(-1), 1.0)
    assert terminal.sum() == 1 and R.max() == 1.0
    pos = jnp.array([3, 5])  # the doorway between the two upper rooms
    state = env.reset_env(jax.random.key(0), params)[1].replace(pos=pos)
    keys = jax.random.split(jax.random.key(1), 20_000)
    for action in range(4):
        nxt = jax.vmap(lambda k, a=action: env.step_env(k, state, a, params)[1].pos)(keys)
        idx = np.asarray(nxt[:, 0] * 13 + nxt[:, 1])
        freq = np.bincount(idx, minlength=169) / len(idx)
        np.testing.assert_allclose(freq, P[3 * 13 + 5, action], atol=0.015)
    # the intended move happens with probability 2/3
    assert P[3 * 13 + 5, 1, 3 * 13 + 6] == pytest.approx(2 / 3)


def test_semi_gradient_sf_td_on_a_table_converges_to_closed_form(mdp):
    """sf_td_loss through the library's psi network (a zero-initialised table: SuccessorHead
    with an embedding and no hidden layer), expected targets over every (s, a), gradient
    descent: the fixed point is psi = M phi."""
    from purembrl.networks import SuccessorHead

    P, _, pi = mdp
    S, A = pi.shape
    N = 4
    phi = jnp.asarray(np.random.default_rng(7).standard_normal((S, A, N)), jnp.float32)
    P_j, pi_j = jnp.asarray(P, jnp.float32), jnp.asarray(pi, jnp.float32)
    net = SuccessorHead(A, N, (), num_states=S)
    params = net.init(jax.random.key(0), jnp.arange(S))

    def loss(params):
        psi = net.apply(params, jnp.arange(S))  # [S, A, N]
        next_psi = jnp.einsum("sat,tb,tbn->san", P_j, pi_j, psi)  # E psi(s', a'), a' ~ pi
        per = jax.vmap(jax.vmap(successor.sf_td_loss, in_axes=(0, 0, 0, None, None)),
                       in_axes=(0, 0, 0, None, None))(psi, phi, next_psi, jnp.array(False),
                                                       GAMMA)
        return per.sum()

    def sgd(params, _):
        return jax.tree.map(lambda p, g: p - 0.5 * g, params, jax.grad(loss)(params)), None

    params, _ = jax.jit(lambda p: jax.lax.scan(sgd, p, None, length=600))(params)
    M = successor.sr_closed_form(successor.state_action_chain(P, pi), GAMMA)
    closed = (M @ np.asarray(phi).reshape(S * A, N)).reshape(S, A, N)
    np.testing.assert_allclose(net.apply(params, jnp.arange(S)), closed, atol=1e-4)
