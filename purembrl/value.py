"""TD targets and losses, written unbatched (rlax's style): callers batch with ``jax.vmap``.

* Soft actor-critic: Haarnoja, Zhou, Hartikainen, Tucker, Ha, Tan, Kumar, Zhu, Gupta, Abbeel &
  Levine 2018, "Soft Actor-Critic Algorithms and Applications", Eqs. (5)-(7) (critic, with the
  clipped double-Q of Fujimoto et al. 2018), (7) and (18) (actor, temperature).
* DQN: Mnih et al. 2015 (target network, Huber loss); double Q-learning target: van Hasselt,
  Guez & Silver 2016, Eq. (4).
* Deep Dyna's expected target over sampled next states (the notes); model-based value
  expansion, MBVE: Feinberg, Wang, Stoica, Jordan, Gonzalez & Levine 2018 (TD-k targets); NAF:
  Gu, Lillicrap, Sutskever & Levine 2016 (the quadratic advantage head).
* Polyak averaging of target parameters; greedy choice among tied values (tabular learners).

Conventions: ``terminated`` is 1 only for a true terminal state; a time-limit truncation is not
terminal, so targets bootstrap through it.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def _not_terminal(terminated: jax.Array) -> jax.Array:
    return 1.0 - terminated.astype(jnp.float32)


# --- soft actor-critic --------------------------------------------------------------------------

def sac_target(reward: jax.Array, terminated: jax.Array, gamma: jax.Array,
               next_q: jax.Array, next_log_prob: jax.Array, alpha: jax.Array) -> jax.Array:
    """Soft clipped double-Q target r + gamma (1 - d) (min_i Q_i(s', a') - alpha log pi(a'|s')).

    Args:
      reward, terminated: scalars of one transition. gamma, alpha: scalars.
      next_q: ``[num_critics]`` target-critic values at (s', a'), a' ~ pi(.|s').
      next_log_prob: log pi(a'|s'), scalar.
    """
    chex.assert_rank([reward, next_q, next_log_prob], [0, 1, 0])
    soft_value = jnp.min(next_q) - alpha * next_log_prob
    return reward + gamma * _not_terminal(terminated) * soft_value


def sac_critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """Sum over critics of 0.5 (Q_i(s, a) - y)^2; ``q`` ``[num_critics]``, ``target`` scalar
    (held constant: wrap it in ``stop_gradient``)."""
    chex.assert_rank([q, target], [1, 0])
    return 0.5 * jnp.sum((q - target) ** 2)


def sac_actor_loss(q: jax.Array, log_prob: jax.Array, alpha: jax.Array) -> jax.Array:
    """alpha log pi(a|s) - min_i Q_i(s, a) for a ~ pi(.|s) (reparameterised); ``q`` ``[num]``."""
    chex.assert_rank([q, log_prob], [1, 0])
    return alpha * log_prob - jnp.min(q)


def sac_temperature_loss(log_alpha: jax.Array, log_prob: jax.Array,
                         target_entropy: jax.Array) -> jax.Array:
    """-log(alpha) (log pi(a|s) + target entropy): pushes the entropy towards its target. The
    log-probability is treated as a constant. (Optimising log alpha is the usual
    parameterisation of Eq. (18).)"""
    chex.assert_rank([log_alpha, log_prob], [0, 0])
    return -log_alpha * jax.lax.stop_gradient(log_prob + target_entropy)


# --- Q-learning ---------------------------------------------------------------------------------

def q_learning_target(reward: jax.Array, terminated: jax.Array, gamma: jax.Array,
                      next_q_target: jax.Array) -> jax.Array:
    """r + gamma (1 - d) max_a' Q_target(s', a'); ``next_q_target`` ``[num_actions]``."""
    chex.assert_rank([reward, next_q_target], [0, 1])
    return reward + gamma * _not_terminal(terminated) * jnp.max(next_q_target)


def double_q_target(reward: jax.Array, terminated: jax.Array, gamma: jax.Array,
                    next_q_online: jax.Array, next_q_target: jax.Array) -> jax.Array:
    """r + gamma (1 - d) Q_target(s', argmax_a' Q_online(s', a')) (double DQN).

    ``next_q_online`` and ``next_q_target`` are ``[num_actions]``.
    """
    chex.assert_rank([reward, next_q_online, next_q_target], [0, 1, 1])
    chex.assert_equal_shape([next_q_online, next_q_target])
    best = jnp.argmax(next_q_online)
    return reward + gamma * _not_terminal(terminated) * next_q_target[best]


def huber(x: jax.Array, delta: float = 1.0) -> jax.Array:
    """0.5 x^2 for |x| <= delta, else delta (|x| - 0.5 delta)."""
    abs_x = jnp.abs(x)
    quadratic = jnp.minimum(abs_x, delta)
    return 0.5 * quadratic ** 2 + delta * (abs_x - quadratic)


def td_loss(q: jax.Array, target: jax.Array, kind: str = "huber") -> jax.Array:
    """Loss of one TD error ``target - q`` (target held constant): ``"huber"`` or ``"mse"``
    (0.5 error^2)."""
    error = jax.lax.stop_gradient(target) - q
    if kind == "huber":
        return huber(error)
    if kind == "mse":
        return 0.5 * error ** 2
    raise ValueError(f"kind={kind!r} is invalid: allowed 'huber' or 'mse'")


# --- targets that use a model -------------------------------------------------------------------

def expected_target(reward: jax.Array, terminated: jax.Array, gamma: jax.Array,
                    next_value: jax.Array) -> jax.Array:
    """Deep Dyna's expected target for one (s, a): the mean over ``K`` sampled next states of
    ``r_k + gamma (1 - d_k) V(s'_k)``; ``reward``, ``terminated``, ``next_value``: ``[K]`` (the
    notes' point: estimate E_{s'} from many model samples instead of one)."""
    chex.assert_rank([reward, terminated, next_value], [1, 1, 1])
    chex.assert_equal_shape([reward, terminated, next_value])
    return jnp.mean(reward + gamma * _not_terminal(terminated) * next_value)


def mbve_targets(rewards: jax.Array, terminated: jax.Array, gamma: jax.Array,
                 bootstrap: jax.Array) -> jax.Array:
    """Model-based value expansion targets with the TD-k trick (Feinberg et al. 2018, Eq. (3)).

    Along one path h_0 = (s_0, a_0) (real), h_1 .. h_H (imagined with the target policy through
    the model), the target of Q(h_t) for every t = 0..H is

        G_t = sum_{k=t}^{H} gamma^{k-t} r_k + gamma^{H+1-t} V(s_{H+1}),

    cut at the first termination. Args: ``rewards [H+1]`` (r_0 real, the rest imagined),
    ``terminated [H+1]`` (d_k: s_{k+1} is terminal), ``bootstrap``: the target critic's value of
    s_{H+1} under the target policy. Returns ``[H+1]``; with H = 0 it is the one-step TD target.
    """
    chex.assert_rank([rewards, terminated, bootstrap], [1, 1, 0])
    chex.assert_equal_shape([rewards, terminated])

    def back(g_next, x):
        r, d = x
        g = r + gamma * _not_terminal(d) * g_next
        return g, g

    _, targets = jax.lax.scan(back, bootstrap, (rewards, terminated), reverse=True)
    return targets


# --- normalized advantage functions -------------------------------------------------------------

def naf_matrix(entries: jax.Array, action_dim: int) -> tuple[jax.Array, jax.Array]:
    """``(L, P = L L^T)`` from ``action_dim (action_dim + 1) / 2`` network outputs: the lower
    triangle of L row by row, its diagonal through ``exp`` so that P is positive definite
    (Gu, Lillicrap, Sutskever & Levine 2016, Sec. 4)."""
    chex.assert_shape(entries, (action_dim * (action_dim + 1) // 2,))
    rows, cols = jnp.tril_indices(action_dim)
    L = jnp.zeros((action_dim, action_dim), entries.dtype).at[rows, cols].set(entries)
    L = jnp.where(jnp.eye(action_dim, dtype=bool), jnp.exp(L), L)
    return L, L @ L.T


def naf_q(value_: jax.Array, mu: jax.Array, entries: jax.Array, action: jax.Array) -> jax.Array:
    """``Q(s, a) = V(s) - 1/2 (a - mu(s))^T P(s) (a - mu(s))`` for one state: ``value_`` scalar,
    ``mu`` and ``action`` ``[d]``, ``entries`` the ``d (d + 1) / 2`` outputs of the L head. The
    greedy action is ``mu`` and ``max_a Q = V``."""
    chex.assert_rank([value_, mu, action], [0, 1, 1])
    chex.assert_equal_shape([mu, action])
    _, P = naf_matrix(entries, mu.shape[0])
    diff = action - mu
    return value_ - 0.5 * diff @ P @ diff


def state_value_target(reward: jax.Array, terminated: jax.Array, gamma: jax.Array,
                       next_value: jax.Array) -> jax.Array:
    """``r + gamma (1 - d) V'(s')`` for a learner with a state-value head: NAF's target
    ``y = r + gamma V'(s')`` (Gu et al. 2016, Algorithm 1), where V' = max_a Q' is the target
    network's value head. All arguments scalars."""
    chex.assert_rank([reward, terminated, next_value], [0, 0, 0])
    return reward + gamma * _not_terminal(terminated) * next_value


# --- greedy action choice -----------------------------------------------------------------------

def uniform_choice(u: jax.Array, allowed: jax.Array) -> jax.Array:
    """The index of a uniformly chosen ``True`` entry of ``allowed`` ([A]) given u ~ U[0, 1):
    one uniform per choice, not one per entry (each ``jax.random`` call inlines a Threefry
    hash, so a tabular loop stays small)."""
    chex.assert_rank([u, allowed], [0, 1])
    count = allowed.sum()
    rank = jnp.minimum(jnp.floor(u * count), count - 1)  # which allowed entry, 0-based
    return jnp.argmax(allowed & (jnp.cumsum(allowed) - 1 == rank))


def random_argmax(u: jax.Array, values: jax.Array, atol: float = 0.0) -> jax.Array:
    """An index of ``max(values)`` ([A]), uniformly among the entries within ``atol`` of it,
    given u ~ U[0, 1): the greedy action of a tabular learner, whose all-zero tables at the
    start make every action a tie (Sutton & Barto 2018, Section 2.2)."""
    chex.assert_rank(values, 1)
    return uniform_choice(u, values >= values.max() - atol)


# --- target networks ----------------------------------------------------------------------------

def polyak(target, online, tau: jax.Array):
    """(1 - tau) target + tau online, leaf by leaf (tau = 1 copies the online parameters)."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def periodic_update(target, online, step: jax.Array, period: int):
    """The online parameters every ``period`` steps (``step % period == 0``), else the target."""
    copy = (step % period) == 0
    return jax.tree.map(lambda t, o: jnp.where(copy, o, t), target, online)
