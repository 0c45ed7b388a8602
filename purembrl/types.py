"""Shared pytrees.

``Transition`` is the unit every buffer, model and learner exchanges. Its ``next_obs`` is the
*true* next observation (gymnax's ``info["final_observation"]``), never the observation of the
auto-reset episode, and ``terminated`` is kept apart from truncation: targets bootstrap through a
time limit but never through a true terminal state. Its two optional fields serve n-step
returns and are ``None``, adding no leaves, unless asked for.
"""

from __future__ import annotations

import jax
from flax import struct


@struct.dataclass
class Transition:
    """One environment transition (or a batch of them, with leading axes).

    Attributes:
      obs: observation at time t, ``[..., *obs_shape]``.
      action: action taken at time t, ``[...]`` (discrete) or ``[..., action_dim]``.
      reward: reward r_{t+1}, ``[...]``.
      next_obs: the true observation at t+1 (before any auto-reset), ``[..., *obs_shape]``.
      terminated: 1 where s_{t+1} is terminal (no bootstrap), ``[...]``.
      episode_end: optional, 1 where the step ends its episode (terminated or truncated),
        ``[...]``. A replay buffer made with room for it (``interact.example_transition(...,
        episode_end=True)``) stores it, so that n-step returns stop at episode boundaries
        (``buffer.sample_n_step``); ``None`` (no leaf) everywhere else.
      discount: optional, the factor on the bootstrapped value in place of the learner's
        gamma, ``[...]``: gamma^m for an m-step return (``buffer.sample_n_step``); ``None``
        (no leaf): gamma.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    episode_end: jax.Array | None = None
    discount: jax.Array | None = None
