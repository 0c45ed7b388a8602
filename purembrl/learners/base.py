"""The learner interface, written down once: three pure functions with fixed signatures.

Every learner (SAC, DQN, NAF, and any a user adds) is a ``Learner`` of an ``InitFn``, an
``UpdateFn`` and an ``ActFn`` (optax writes ``GradientTransformation`` the same way). The loops
and algorithms reach a learner only through these three calls:

* ``init(key) -> state``;
* ``update(state, batch, key) -> (state, info)``: ``batch`` a ``Transition`` with a leading
  batch axis, or with K sampled next states per (s, a) (``reward``, ``terminated`` ``[B, K]``,
  ``next_obs`` ``[B, K, obs_dim]``: deep Dyna's expected target); ``info`` a dict of scalars;
* ``act(state, key, obs [B, ...], explore=True, step=0) -> action [B, ...]``: ``explore`` the
  behaviour policy (sampled, noisy or epsilon-greedy), else the deterministic one; ``step`` the
  trained environment steps so far (after the warm-up), for schedules a learner keeps in its own
  config (DQN's epsilon).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from purembrl.types import Transition


class InitFn(Protocol):
    def __call__(self, key: jax.Array) -> Any:
        """A fresh learner state (parameters, optimiser states, counters)."""


class UpdateFn(Protocol):
    def __call__(self, state: Any, batch: Transition, key: jax.Array
                 ) -> tuple[Any, dict[str, jax.Array]]:
        """One gradient step on ``batch``: the new state and scalar diagnostics."""


class ActFn(Protocol):
    def __call__(self, state: Any, key: jax.Array, obs: jax.Array,
                 explore: bool | jax.Array = True, step: int | jax.Array = 0) -> jax.Array:
        """Actions ``[B, ...]`` for observations ``obs [B, ...]``."""


class Learner(NamedTuple):
    """A learner as three pure functions (see the module docstring for their contracts)."""

    init: InitFn
    update: UpdateFn
    act: ActFn


def linear_epsilon(steps: jax.Array, start: jax.Array, end: jax.Array,
                   decay_steps: int) -> jax.Array:
    """Epsilon decayed linearly from ``start`` to ``end`` over ``decay_steps`` steps."""
    frac = jnp.clip(steps / decay_steps, 0.0, 1.0)
    return start + frac * (end - start)
