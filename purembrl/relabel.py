"""A buffer of whole episodes with goal relabelling, for goal-conditioned learners.

Hindsight relabelling (Andrychowicz et al. 2017, "Hindsight Experience Replay") replaces the
goal of a stored transition by a state the agent actually reached later in the same episode;
C-learning (Eysenbach, Salakhutdinov & Levine 2021) draws that future state at a
Geometric(1 - gamma) offset, so that the relabelled goals follow the discounted future-state
distribution ``p_fut(. | s_t, a_t)`` its classifier learns (``classifier.future_offsets``).

The buffer is an ``Episodes`` of ``[capacity, L, ...]`` arrays written as a ring, with the count
of episodes ever stored kept by the caller (a scalar next to it in the learner's state).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from purembrl import classifier, rng

STRATEGIES = ("her", "mixture", "future")


class Episodes(NamedTuple):
    """Trajectories ``[N, L, ...]``: the state part of each observation, the action, the state
    part of the next observation, and the episode's commanded goal."""

    state: jax.Array
    action: jax.Array
    next_state: jax.Array
    goal: jax.Array


def init(capacity: int, length: int, state_dim: int, action_shape: tuple[int, ...],
         action_dtype) -> Episodes:
    """An empty buffer of ``capacity`` episodes of ``length`` steps (zeros)."""
    def states():
        return jnp.zeros((capacity, length, state_dim))

    return Episodes(states(), jnp.zeros((capacity, length, *action_shape), action_dtype),
                    states(), states())


def add(episodes: Episodes, count: jax.Array, new: Episodes) -> Episodes:
    """``new`` episodes ``[n, L, ...]`` written over the oldest, after ``count`` stored so far
    (the caller adds ``n`` to its count)."""
    chex.assert_equal_shape_suffix([episodes.state, new.state], 2)
    n, capacity = new.state.shape[0], episodes.state.shape[0]
    idx = (count + jnp.arange(n)) % capacity
    return jax.tree.map(lambda buf, x: buf.at[idx].set(x), episodes, new)


def sample(episodes: Episodes, count: jax.Array, key: jax.Array, batch_size: int, gamma,
           future_prob, strategy: str) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(state, action, next_state, goal)``, each ``[batch_size, ...]``: uniform transitions of
    the stored episodes with relabelled goals.

    With probability ``future_prob`` the goal is a future state of the same episode
    (``classifier.future_offsets``); otherwise, by ``strategy``: ``"her"`` keeps the episode's
    own goal (HER's "future" strategy), ``"mixture"`` takes a random stored state (C-learning's
    marginal), ``"future"`` ignores ``future_prob`` and always relabels to a future state (the
    contrastive critics, whose other goals are the minibatch's).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is invalid: allowed one of {STRATEGIES}")
    key_e, key_t, key_f, key_re, key_rt, key_mix = jax.random.split(key, 6)
    capacity, length = episodes.state.shape[:2]
    filled = jnp.minimum(count, capacity)
    B = batch_size
    e = rng.randint(key_e, (B,), 0, filled)
    t = rng.randint(key_t, (B,), 0, length)
    future = episodes.next_state[e, classifier.future_offsets(key_f, t, length, gamma)]
    random = episodes.next_state[rng.randint(key_re, (B,), 0, filled),
                                 rng.randint(key_rt, (B,), 0, length)]
    use_future = jax.random.uniform(key_mix, (B,)) < future_prob
    if strategy == "her":
        goal = jnp.where(use_future[:, None], future, episodes.goal[e, t])
    elif strategy == "mixture":
        goal = jnp.where(use_future[:, None], future, random)
    else:
        goal = future
    return episodes.state[e, t], episodes.action[e, t], episodes.next_state[e, t], goal
