"""Successor representations (SR) and successor features (SF): closed forms, TD, GPI.

* Successor representation: Dayan 1993, "Improving generalization for temporal difference
  learning: the successor representation".
* Successor features, generalised policy improvement (GPI), SFQL: Barreto, Dabney, Munos, Hunt,
  Schaul, van Hasselt & Silver 2017, "Successor features for transfer in reinforcement learning"
  (Eq. (3)-(4) for psi and its Bellman equation, Theorem 1 for GPI).

Convention (the notes', the default ``normalised=True``). A history is h = (s, a). The successor
distribution is a probability distribution over future h,

    p_fut(h | h_t) = (1 - g) sum_k g^k p(h_{t+k} = h | h_t),

so the tabular SR ``M = (1 - g)(I - g P_pi)^-1`` has rows summing to 1. With features
``phi(h) in R^N`` the successor features are ``psi(h_t) = E_{h ~ p_fut(.|h_t)} phi(h)`` and satisfy

    psi(h_t) = (1 - g) phi(h_t) + g E_{h' ~ p_pi(.|h_t)} psi(h').

For a reward ``r = w . phi``, ``Q(h) = w . psi(h) / (1 - g)``.

Most papers (Barreto 2017 included) use the unnormalised convention ``psi = phi + g E psi'``,
``Q = w . psi``; every function here takes ``normalised=False`` for it. The two differ by the
factor (1 - g) only, so GPI's argmax is the same under both.

A terminal transition ends the future: the target is ``(1 - g) phi`` (normalised) or ``phi``; the
successor distribution of an episode that can end then sums to less than 1.

Tabular indices of the state-action chain are ``h = s * num_actions + a``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

# --- tabular ------------------------------------------------------------------------------------


def _scale(gamma, normalised: bool):
    return (1.0 - gamma) if normalised else 1.0


def sr_closed_form(P_pi: jax.Array, gamma: float, normalised: bool = True) -> jax.Array:
    """The SR of a Markov chain: ``(1 - g)(I - g P_pi)^-1`` (or ``(I - g P_pi)^-1``).

    Args:
      P_pi: ``[n, n]`` row-stochastic transition matrix of the chain under the policy: over
        states (use ``state_chain``) or over state-action pairs (``state_action_chain``).
      gamma: discount in [0, 1).
    Returns:
      ``M [n, n]``; ``M[i, j]`` is the (discounted) occupancy of j starting from i. With
      ``normalised`` each row is a distribution.
    """
    P_pi = jnp.asarray(P_pi)
    chex.assert_rank(P_pi, 2)
    n = P_pi.shape[0]
    if P_pi.shape[1] != n:
        raise ValueError(f"P_pi must be square, got shape {P_pi.shape}")
    eye = jnp.eye(n, dtype=P_pi.dtype)
    return _scale(gamma, normalised) * jnp.linalg.solve(eye - gamma * P_pi, eye)


def state_chain(P: jax.Array, pi: jax.Array) -> jax.Array:
    """``P_pi[s, s'] = sum_a pi(a|s) P[s, a, s']`` from ``P [S, A, S]`` and ``pi [S, A]``."""
    chex.assert_rank([P, pi], [3, 2])
    chex.assert_equal_shape_prefix([P, pi], 2)
    return jnp.einsum("sa,sat->st", pi, P)


def state_action_chain(P: jax.Array, pi: jax.Array) -> jax.Array:
    """``P_pi[(s, a), (s', a')] = P[s, a, s'] pi(a'|s')``, shape ``[S * A, S * A]``."""
    chex.assert_rank([P, pi], [3, 2])
    chex.assert_equal_shape_prefix([P, pi], 2)
    S, A = pi.shape
    return jnp.einsum("sat,tb->satb", P, pi).reshape(S * A, S * A)


def sr_expected_td(M: jax.Array, P_pi: jax.Array, gamma: float, lr: float,
                   normalised: bool = True) -> jax.Array:
    """One expected (full-sweep) TD update of every row of the SR:
    ``M <- M + lr ((1 - g) I + g P_pi M - M)``. Its fixed point is ``sr_closed_form``; with
    ``lr = 1`` it is the Neumann-series iteration, converging at rate g."""
    chex.assert_rank([M, P_pi], [2, 2])
    chex.assert_equal_shape([M, P_pi])
    target = _scale(gamma, normalised) * jnp.eye(M.shape[0], dtype=M.dtype) + gamma * P_pi @ M
    return M + lr * (target - M)


def sr_td_update(M: jax.Array, h: jax.Array, h_next: jax.Array, gamma: float, lr: float,
                 terminated: jax.Array | bool = False, normalised: bool = True) -> jax.Array:
    """One sampled TD(0) update of row ``h`` of the SR from a transition h -> h'.

    ``M[h] <- M[h] + lr ((1 - g) e_h + g (1 - d) M[h'] - M[h])`` (Dayan 1993's TD rule, normalised).
    ``h``, ``h_next`` are integer indices (states, or ``s * A + a`` for the state-action SR); the
    next pair must be drawn with the evaluated policy's action. Scan over transitions to apply
    many; a batch of simultaneous updates would have to average duplicate rows.
    """
    chex.assert_rank(M, 2)
    onehot = jax.nn.one_hot(h, M.shape[1], dtype=M.dtype)
    cont = 1.0 - jnp.asarray(terminated, M.dtype)
    target = _scale(gamma, normalised) * onehot + gamma * cont * M[h_next]
    return M.at[h].add(lr * (target - M[h]))


# --- successor features -------------------------------------------------------------------------


def sf_target(phi: jax.Array, next_psi: jax.Array, terminated: jax.Array, gamma: jax.Array,
              normalised: bool = True) -> jax.Array:
    """``(1 - g) phi + g (1 - d) psi(h')`` (normalised) or ``phi + g (1 - d) psi(h')``.

    Args:
      phi: ``[N]`` features of the transition h -> s'.
      next_psi: ``[N]`` target network's psi at the next pair (s', a'), a' from the policy being
        evaluated (SF policy evaluation) or from GPI (SFQL).
      terminated: scalar, 1 only for a true terminal s' (bootstrap through truncation).
    """
    chex.assert_rank([phi, next_psi, terminated], [1, 1, 0])
    chex.assert_equal_shape([phi, next_psi])
    cont = 1.0 - terminated.astype(phi.dtype)
    return _scale(gamma, normalised) * phi + gamma * cont * next_psi


def sf_td_loss(psi: jax.Array, phi: jax.Array, next_psi: jax.Array, terminated: jax.Array,
               gamma: jax.Array, normalised: bool = True) -> jax.Array:
    """``0.5 ||psi(h) - sg(sf_target)||^2`` for one transition (Barreto 2017, Eq. (4) as a
    regression); ``psi``, ``phi``, ``next_psi``: ``[N]``. The target is held constant."""
    chex.assert_rank(psi, 1)
    chex.assert_equal_shape([psi, phi])
    target = jax.lax.stop_gradient(sf_target(phi, next_psi, terminated, gamma, normalised))
    return 0.5 * jnp.sum((psi - target) ** 2)


def fit_reward_weights(phi: jax.Array, reward: jax.Array, mask: jax.Array | None = None,
                       ridge: float = 1e-6) -> jax.Array:
    """Least-squares reward weights ``w = argmin sum_i m_i (r_i - w . phi_i)^2 + ridge |w|^2``.

    Args:
      phi: ``[B, N]`` features of observed transitions; reward: ``[B]``.
      mask: optional ``[B]`` weights (0 for unfilled buffer rows), so a fixed-size buffer can be
        fitted under jit.
      ridge: Tikhonov term that keeps the normal equations solvable when a feature never fired.
    Returns ``w [N]``.
    """
    chex.assert_rank([phi, reward], [2, 1])
    chex.assert_equal_shape_prefix([phi, reward], 1)
    m = jnp.ones_like(reward) if mask is None else mask.astype(phi.dtype)
    gram = (phi * m[:, None]).T @ phi + ridge * jnp.eye(phi.shape[1], dtype=phi.dtype)
    return jnp.linalg.solve(gram, (phi * m[:, None]).T @ reward)


def multitask_feature_loss(phi: jax.Array, reward: jax.Array, task: jax.Array) -> jax.Array:
    """Multi-task regression of learned features with the weights fixed to the identity:
    ``0.5 mean_i (r_i - phi_i[task_i])^2``.

    SFQL-h (Barreto et al. 2017, Section 5) learns ``phi~ in R^h`` from the rewards of h tasks
    so that ``r_j = phi~ . w~_j`` for each; with h outputs the weights can be fixed to
    ``w~_j = e_j`` without loss of generality (successor features and GPI are unchanged by an
    invertible linear map of the features), so output j regresses task j's reward.

    Args:
      phi: ``[B, h]`` predicted features of B transitions; reward: ``[B]``; task: ``[B]`` int,
        the task (0..h-1) each transition's reward came from.
    """
    chex.assert_rank([phi, reward, task], [2, 1, 1])
    chex.assert_equal_shape_prefix([phi, reward, task], 1)
    predicted = jnp.take_along_axis(phi, task[:, None].astype(jnp.int32), axis=1)[:, 0]
    return 0.5 * jnp.mean((reward - predicted) ** 2)


def reward_weights_sgd(w: jax.Array, phi: jax.Array, reward: jax.Array,
                       lr: jax.Array, normalised: bool = False) -> jax.Array:
    """One SGD step on ``0.5 mean (r - w . phi)^2``: ``w + lr mean((r - w . phi) phi)``.
    ``phi [B, N]`` or ``[N]`` (one transition, as in SFQL's online update of w).

    ``normalised``: each row's step is divided by ``max(|phi|^2, 1)`` (normalised least mean
    squares, Widrow & Hoff): for ``|phi| >= 1`` one step moves ``w . phi`` a fraction ``lr`` of
    the way to ``r`` whatever the features' scale, so any ``0 < lr <= 1`` is stable. Plain SGD
    multiplies the error along phi by ``1 - lr |phi|^2`` and diverges once that is below -1
    (learned features of norm above ``sqrt(2 / lr)``). Features of norm at most 1 (one-hot
    ones) take the same step either way."""
    phi = jnp.atleast_2d(phi)
    reward = jnp.atleast_1d(reward)
    chex.assert_rank([w, phi, reward], [1, 2, 1])
    error = reward - phi @ w
    if normalised:
        error = error / jnp.maximum(jnp.sum(phi * phi, axis=1), 1.0)
    return w + lr * jnp.mean(error[:, None] * phi, axis=0)


def q_from_sf(psi: jax.Array, w: jax.Array, gamma: jax.Array,
              normalised: bool = True) -> jax.Array:
    """``Q = w . psi / (1 - g)`` over the last axis (``w . psi`` when unnormalised)."""
    chex.assert_axis_dimension(psi, -1, w.shape[-1])
    q = jnp.einsum("...n,n->...", psi, w)
    return q / (1.0 - gamma) if normalised else q


def gpi_q(psis: jax.Array, w: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """``max_i w . psi_i(s, a)`` for one state: ``psis [num_policies, num_actions, N]`` ->
    ``[num_actions]`` (Q up to the convention's positive factor; policies with ``valid`` False
    are ignored)."""
    chex.assert_rank([psis, w], [3, 1])
    q = jnp.einsum("pan,n->pa", psis, w)
    if valid is not None:
        q = jnp.where(valid[:, None], q, -jnp.inf)
    return jnp.max(q, axis=0)


def gpi_action(psis: jax.Array, w: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """Generalised policy improvement: ``argmax_a max_i w . psi_i(s, a)`` (Barreto 2017, Thm 1).

    Args:
      psis: ``[num_policies, num_actions, N]``, the successor features of each policy at one state
        (callers vmap over states).
      w: ``[N]`` reward weights of the task at hand.
      valid: optional ``[num_policies]`` bool; policies marked False are ignored (a fixed-size
        stack that is filled as tasks arrive).
    Returns the action index (int32 scalar).
    """
    chex.assert_rank([psis, w], [3, 1])
    chex.assert_axis_dimension(psis, 2, w.shape[0])
    if valid is not None:
        chex.assert_shape(valid, (psis.shape[0],))
    return jnp.argmax(gpi_q(psis, w, valid)).astype(jnp.int32)


def gpi_policy_index(psis: jax.Array, w: jax.Array, valid: jax.Array | None = None
                     ) -> jax.Array:
    """The policy whose value GPI follows at this state: ``argmax_i max_a w . psi_i(s, a)``
    (SFQL updates that policy's psi as well as the current one)."""
    chex.assert_rank([psis, w], [3, 1])
    q = jnp.max(jnp.einsum("pan,n->pa", psis, w), axis=1)
    if valid is not None:
        q = jnp.where(valid, q, -jnp.inf)
    return jnp.argmax(q).astype(jnp.int32)
