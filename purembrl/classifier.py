"""The successor distribution as a classifier: C-learning and contrastive (InfoNCE) losses.

* C-learning: Eysenbach, Salakhutdinov & Levine 2021, "C-Learning: Learning to Achieve Goals via
  Recursive Classification" (ICLR). Monte Carlo C-learning (their Sec. 4.1, Eq. (3)) and
  off-policy TD C-learning (Sec. 4.2, Eq. (7), Algorithm 2).
* Contrastive RL: Eysenbach, Zhang, Salakhutdinov & Levine 2022, "Contrastive Learning as
  Goal-Conditioned Reinforcement Learning" (NeurIPS), the InfoNCE critic.

A density ``p_fut(g | s, a)`` over continuous states cannot be tabulated. Train a classifier
``C(s, a, g)`` to tell a *future* state (label 1) from a state drawn from a marginal ``p(g)``
(label 0), k marginal samples per future one. The Bayes-optimal classifier satisfies

    C / (1 - C) = p_fut(g | s, a) / (k p(g)),

so ``p_fut`` is recovered up to a factor that does not depend on (s, a): the argmax over actions
is unchanged. Here the future state is the state reached after a Geometric(1 - g) number of
steps, at least one: ``p_fut(g | s, a) = (1 - g) sum_{d >= 0} g^d p(s_{t+1+d} = g | s_t, a_t)``,
the paper's convention (the notes' successor distribution over states shifted by one step).

Losses are written per example (unbatched); callers average over a batch with ``jax.vmap``.
Classifier outputs are taken as *logits* (``C = sigmoid(logit)``), which keeps the losses
finite where C saturates.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

LOG_WEIGHT_CAP = 60.0
"""Largest exponent of the TD C-learning weight ``w = exp(logit)`` (float32 overflows at 88.7)."""


def _bce(logit: jax.Array, label: jax.Array) -> jax.Array:
    """``-(y log C + (1 - y) log(1 - C))`` with ``C = sigmoid(logit)``, stable for any logit."""
    return label * jax.nn.softplus(-logit) + (1.0 - label) * jax.nn.softplus(logit)


def mc_classifier_loss(pos_logit: jax.Array, neg_logits: jax.Array) -> jax.Array:
    """Monte Carlo C-learning for one (s, a): a future state vs ``k`` marginal states.

    ``-log C(s, a, g+) - sum_i log(1 - C(s, a, g-_i))``; the class ratio k is the number of
    negatives (``neg_logits [k]``). Positives must be drawn at a Geometric(1 - g) offset along
    the trajectory of the policy being evaluated (on-policy); see ``future_offsets``.
    Optimum: ``C / (1 - C) = p_fut(g | s, a) / (k p(g))``.
    """
    chex.assert_rank([pos_logit, neg_logits], [0, 1])
    return _bce(pos_logit, 1.0) + jnp.sum(_bce(neg_logits, 0.0))


def td_classifier_loss(next_logit: jax.Array, goal_logit: jax.Array,
                       next_goal_logit: jax.Array, gamma: jax.Array,
                       max_weight: float | None = None) -> jax.Array:
    """Off-policy (TD) C-learning for one transition (s, a, s') and one random goal g ~ p(g).

    * the next state is a positive with weight ``1 - g``: ``-(1 - g) log C(s, a, s')``;
    * the random goal gets the bootstrapped importance weight ``w = C' / (1 - C')`` of the
      next state, ``C' = C(s', a', g)`` with ``a' ~ pi(. | s', g)`` (held constant), and is
      classified with label ``g w / (1 + g w)`` and weight ``1 + g w``, i.e.
      ``-(g w log C(s, a, g) + log(1 - C(s, a, g)))``.

    The fixed point is ``C / (1 - C) = p_fut^pi(g | s, a) / p(g)`` (class ratio 1).

    Args:
      next_logit: logit of C(s, a, s'). goal_logit: logit of C(s, a, g).
      next_goal_logit: logit of C(s', a', g) (from the target network, say); ``w = exp`` of it.
      gamma: discount. max_weight: optional clip of w (stabilises training but biases the
        fixed point: off by default, and off in exact checks).

    Without ``max_weight`` the exponent is still capped at ``LOG_WEIGHT_CAP`` (60: w <= 1.1e26)
    so that a wild bootstrap logit early in training gives a huge but finite loss instead of
    ``inf`` (``exp`` overflows float32 past 88.7) and NaN gradients. The cap changes nothing a
    classifier can reach at its fixed point: there ``w = p_fut(g | s, a) / p(g)``, at most
    ``1 / p(g)``.
    """
    chex.assert_rank([next_logit, goal_logit, next_goal_logit], [0, 0, 0])
    w = jnp.exp(jnp.minimum(jax.lax.stop_gradient(next_goal_logit), LOG_WEIGHT_CAP))
    if max_weight is not None:
        w = jnp.minimum(w, max_weight)
    label = gamma * w / (1.0 + gamma * w)
    return (1.0 - gamma) * _bce(next_logit, 1.0) + (1.0 + gamma * w) * _bce(goal_logit, label)


def density_ratio(c: jax.Array, k: float = 1.0) -> jax.Array:
    """``k C / (1 - C)`` from classifier probabilities ``c``: the estimate of
    ``p_fut(g | s, a) / p(g)`` (k: negatives per positive during training)."""
    return k * c / (1.0 - c)


def log_density_ratio(logit: jax.Array, k: float = 1.0) -> jax.Array:
    """``log(k C / (1 - C)) = logit + log k``: the same from a logit, without overflow."""
    return logit + jnp.log(k)


def future_density(c: jax.Array, marginal_density: jax.Array, k: float = 1.0) -> jax.Array:
    """``p_fut(g | s, a) = k C / (1 - C) p(g)``, exact when ``p(g)`` (the density the negatives
    were drawn from) is known; otherwise ``density_ratio`` is p_fut up to a factor of g."""
    return density_ratio(c, k) * marginal_density


def infonce_loss(logits: jax.Array) -> jax.Array:
    """Contrastive RL's critic loss over a batch: ``logits[i, j] = phi(s_i, a_i) . psi(g_j)``
    where g_i is a future state of (s_i, a_i); each row classifies its own goal among the
    batch's (cross-entropy on the diagonal), averaged over rows. The optimal critic is
    ``exp(logit) = p_fut(g | s, a) / p(g)`` up to a factor of (s, a)."""
    chex.assert_rank(logits, 2)
    chex.assert_equal(logits.shape[0], logits.shape[1])
    log_probs = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.diagonal(log_probs))


def binary_nce_loss(logits: jax.Array) -> jax.Array:
    """Contrastive RL's binary NCE critic loss (Eysenbach et al. 2022, the "NCE" variant):
    ``logits[i, j] = phi(s_i, a_i) . psi(g_j)``, the diagonal (g_i a future state of
    (s_i, a_i)) labelled 1 and every other pair 0, sigmoid cross-entropy averaged over the
    ``B x B`` entries. Unlike InfoNCE, whose softmax leaves a free additive term per (s, a),
    its optimum fixes the logit: ``logit = log p_fut(g | s, a) / p(g) - log(B - 1)``, so an
    actor that climbs it over actions climbs the log density ratio itself."""
    chex.assert_rank(logits, 2)
    chex.assert_equal(logits.shape[0], logits.shape[1])
    labels = jnp.eye(logits.shape[0])
    return jnp.mean(_bce(logits, labels))


def future_offsets(key: jax.Array, t: jax.Array, length: jax.Array,
                   gamma: float) -> jax.Array:
    """Indices of future goals within the same episode, for replay: ``t + d`` with
    ``d ~ Geometric(1 - g)`` on {0, 1, ...}, clipped to the episode's last index ``length - 1``.

    Index into the episode's array of *next* states (``next_obs[t]`` is s_{t+1}), so the goal
    is s_{t+1+d}, distributed as ``p_fut(. | s_t, a_t)`` above. ``t`` and ``length`` broadcast
    (integer arrays, ``t < length``). Offsets past the end put their mass on the final state
    (as the reference C-learning implementation does); with episodes much longer than
    ``1 / (1 - g)`` this truncation is negligible.
    """
    u = jax.random.uniform(key, jnp.shape(t), minval=jnp.finfo(jnp.float32).tiny)
    d = jnp.floor(jnp.log(u) / jnp.log(gamma)).astype(jnp.int32)  # P(d >= n) = g^n
    return jnp.minimum(t + d, length - 1)
