"""The learner interface, written down once: three pure functions with fixed signatures.

Every learner (SAC, DQN, NAF, and any a user adds) is a ``Learner`` of an ``InitFn``, an
``UpdateFn`` and an ``ActFn`` (optax writes ``GradientTransformation`` the same way). The loops
and algorithms reach a learner only through these three calls:

* ``init(key) -> state``;
* ``update(state, batch, key) -> (state, info)``: ``batch`` a ``Transition`` with a leading
  batch axis, or with K sampled next states per (s, a) (``reward``, ``terminated`` ``[B, K]``,
  ``next_obs`` ``[B, K, obs_dim]``: deep Dyna's expected target), or ``CriticTargets``, real
  transitions with critic targets the caller builds (MBVE's value expansion; SAC takes them);
  ``info`` a dict of scalars;
* ``act(state, key, obs [B, ...], explore=True, step=0) -> action [B, ...]``: ``explore`` the
  behaviour policy (sampled, noisy or epsilon-greedy), else the deterministic one; ``step`` the
  trained environment steps so far (after the warm-up), for schedules a learner keeps in its own
  config (DQN's epsilon).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from purembrl.types import Transition


class CriticTargets(NamedTuple):
    """A batch whose critic regression set the caller builds from the learner's current state
    (MBVE's H-step value expansion through a model): a way to hand a learner targets that need
    its own networks without reaching into its state.

    Attributes:
      real: the real transitions ``[B]``; the actor and temperature train on their ``obs``.
      build: ``(state, preprocess) -> ((obs [N, d], action [N, a], target [N], weight [N]),
        info)``: the critics regress on ``target`` at (obs, action) as a ``weight``-weighted
        mean; ``state`` is the learner's own state, ``preprocess`` what its networks do to a
        raw observation first (the identity, or ``normalize_observations``' statistics), to
        apply before any network of ``state`` sees one (the returned ``obs`` already are);
        ``info``'s scalars join the update's.
    """

    real: Transition
    build: Callable[[Any, Callable[[jax.Array], jax.Array]], tuple[tuple, dict]]


class InitFn(Protocol):
    def __call__(self, key: jax.Array) -> Any:
        """A fresh learner state (parameters, optimiser states, counters)."""


class UpdateFn(Protocol):
    def __call__(self, state: Any, batch: Transition | CriticTargets, key: jax.Array
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
