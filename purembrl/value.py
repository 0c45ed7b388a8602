"""TD targets and losses, written unbatched (rlax's style): callers batch with ``jax.vmap``.

* Soft actor-critic: Haarnoja, Zhou, Hartikainen, Tucker, Ha, Tan, Kumar, Zhu, Gupta, Abbeel &
  Levine 2018, "Soft Actor-Critic Algorithms and Applications", Eqs. (5)-(7) (critic, with the
  clipped double-Q of Fujimoto et al. 2018), (7) and (18) (actor, temperature).
* DQN: Mnih et al. 2015 (target network, Huber loss); double Q-learning target: van Hasselt,
  Guez & Silver 2016, Eq. (4).
* Polyak averaging of target parameters.

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


# --- target networks ----------------------------------------------------------------------------

def polyak(target, online, tau: jax.Array):
    """(1 - tau) target + tau online, leaf by leaf (tau = 1 copies the online parameters)."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def periodic_update(target, online, step: jax.Array, period: int):
    """The online parameters every ``period`` steps (``step % period == 0``), else the target."""
    copy = (step % period) == 0
    return jax.tree.map(lambda t, o: jnp.where(copy, o, t), target, online)
