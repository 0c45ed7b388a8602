"""The shape every algorithm's training run takes: ``init`` then ``num_iterations`` ``step``s.

An algorithm builds a ``TrainLoop``; ``as_train`` turns it into the pure ``train(key)`` of the
design contract (one ``lax.scan``, purejaxrl's pattern), and the driver (``purembrl.run``) runs
the same ``step`` in chunks to show progress. One iteration ends with one evaluation, so the
metrics' leading axis is the evaluation index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class TrainLoop(NamedTuple):
    """A training run as pure functions.

    Attributes:
      init: ``key -> carry``, the whole training state (parameters, buffers, env states, keys).
      step: ``(carry, iteration) -> (carry, metrics)``, one iteration; ``iteration`` is its
        index (an int32 scalar, never batched: a loop may branch on it with ``lax.cond`` and
        the branch stays real under ``vmap``); ``metrics`` is a dict of arrays with fixed
        shapes (scalars for most), stacked by ``scan`` along a new leading axis.
      num_iterations: how many ``step``s make the run (a Python int).
    """

    init: Callable[[jax.Array], Any]
    step: Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]]
    num_iterations: int


def as_train(loop: TrainLoop) -> Callable[[jax.Array], tuple[Any, dict[str, jax.Array]]]:
    """``train(key) -> (final carry, metrics [num_iterations, ...])`` as a single scan."""

    def train(key: jax.Array):
        carry = loop.init(key)
        return jax.lax.scan(loop.step, carry, jnp.arange(loop.num_iterations, dtype=jnp.int32))

    return train
