"""Preallocated replay buffer: ``init`` / ``add`` / ``sample`` over a pytree of arrays.

The interface follows flashbax's flat buffer (state as a small pytree, pure functions, works
under ``jit`` and ``vmap``), but the implementation is ours and minimal: the storage is the
example pytree with a leading ``capacity`` axis, ``add`` is one scatter per leaf with wrap-around,
and ``sample`` is one uniform ``randint`` and one gather per leaf, O(batch) whatever the capacity.

Why not flashbax itself: we need what its flat buffer lacks, a validity mask on ``add`` (model
rollouts write only their finite, non-terminated steps) and adds of a batch larger than the
buffer; its trajectory bookkeeping (it samples (t, t+1) pairs) is work we do not need. The side
by side comparison is ``benchmarks/buffer.py``, its numbers in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import numbers
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from purembrl import rng


@struct.dataclass
class BufferState:
    """Replay storage.

    Attributes:
      data: the example pytree with a leading ``[capacity]`` axis on every leaf.
      insert: index where the next item goes (wraps around), int32 scalar.
      size: number of filled entries, ``<= capacity``, int32 scalar.
    """

    data: Any
    insert: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def init(example: Any, capacity: int) -> BufferState:
    """An empty buffer for items shaped like ``example`` (a pytree without a batch axis)."""
    if isinstance(capacity, bool) or not isinstance(capacity, numbers.Integral) or capacity < 1:
        raise ValueError(f"capacity={capacity!r} is invalid: allowed an integer >= 1")
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype),
                        example)
    zero = jnp.zeros((), jnp.int32)
    return BufferState(data=data, insert=zero, size=zero)


def add(state: BufferState, batch: Any, mask: jax.Array | None = None) -> BufferState:
    """Append a batch (leading axis ``[n]`` on every leaf), skipping items where ``mask`` is False.

    Valid items are written contiguously in their order, wrapping around the end; when more
    than ``capacity`` valid items arrive at once only the last ``capacity`` are kept.
    """
    capacity = state.capacity
    leaves = jax.tree.leaves(batch)
    n = leaves[0].shape[0]
    chex.assert_trees_all_equal_structs(batch, state.data)
    for leaf, stored in zip(leaves, jax.tree.leaves(state.data), strict=True):
        if leaf.shape[0] != n or leaf.shape[1:] != stored.shape[1:]:
            raise ValueError(f"batch leaf of shape {leaf.shape} does not match stored items "
                             f"of shape {stored.shape[1:]} with a common leading batch axis {n}")
    if mask is None:
        mask = jnp.ones((n,), bool)
    chex.assert_shape(mask, (n,))
    mask = mask.astype(bool)
    offset = jnp.cumsum(mask, dtype=jnp.int32) - 1  # position of each valid item among the valid
    num_valid = offset[-1] + 1 if n > 0 else jnp.zeros((), jnp.int32)
    # Of more than `capacity` valid items only the last `capacity` survive; scatter with
    # duplicate indices has no defined order, so the earlier ones are dropped explicitly.
    keep = mask & (offset >= num_valid - capacity)
    index = jnp.where(keep, (state.insert + offset) % capacity, capacity)  # capacity: dropped
    data = jax.tree.map(lambda d, b: d.at[index].set(b.astype(d.dtype), mode="drop"),
                        state.data, batch)
    return BufferState(
        data=data,
        insert=(state.insert + num_valid) % capacity,
        size=jnp.minimum(state.size + num_valid, capacity),
    )


def sample(state: BufferState, key: jax.Array, batch_size: int) -> Any:
    """``batch_size`` items drawn uniformly (with replacement) from the filled part.

    Sampling an empty buffer returns the zero-initialised first entry; guard with
    ``can_sample`` where that can happen.
    """
    index = rng.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda d: d[index], state.data)


def sample_n_step(state: BufferState, key: jax.Array, batch_size: int, n: int,
                  gamma: float | jax.Array) -> Any:
    """``batch_size`` n-step transitions (Sutton & Barto 2018, Section 7.1; the n-step DQN
    targets of Hessel et al. 2018's Rainbow) from a buffer holding one stream of consecutive
    steps with their ``episode_end`` flags (``interact.step_into`` into a replay made by
    ``interact.example_transition(..., episode_end=True)``).

    Each sample starts at a row drawn as ``sample`` draws it (the same key gives the same
    rows) and runs m <= n steps: it stops after the step that ends an episode (terminated or
    truncated) and at the newest row. Its ``reward`` is sum_{j<m} gamma^j r_{t+j}, its
    ``next_obs`` and ``terminated`` are those of step t+m-1, and ``discount`` = gamma^m is the
    factor on the bootstrapped value (none after a termination; through a truncation, as for
    one step). ``n = 1`` gives ``sample``'s transitions with ``discount`` = gamma.
    """
    start, rows, alive, m = _windows(state, key, batch_size, n, "sample_n_step")
    gamma = jnp.asarray(gamma, jnp.float32)
    powers = gamma ** jnp.arange(n, dtype=jnp.float32)
    reward = jnp.sum(jnp.where(alive, state.data.reward[rows] * powers, 0.0), axis=1)
    last = rows[jnp.arange(batch_size), m - 1]
    first = jax.tree.map(lambda d: d[start], state.data)
    return first.replace(reward=reward.astype(first.reward.dtype),
                         next_obs=state.data.next_obs[last],
                         terminated=state.data.terminated[last], episode_end=None,
                         discount=gamma ** m.astype(jnp.float32))


def sample_n_step_head(state: BufferState, key: jax.Array, batch_size: int, n: int,
                       gamma: float | jax.Array) -> tuple[Any, Any]:
    """``sample_n_step``'s windows (the same key gives the same windows) split before their
    last step, for a model to take the expectation over that step's next state (deep Dyna with
    n-step returns, ``purembrl.algos.dyna``).

    Returns ``(head, last)``. ``head``: the window's first row with ``reward`` = sum_{j<m-1}
    gamma^j r_{t+j} (the real return before the last step; 0 for m = 1) and ``discount`` =
    gamma^(m-1), the factor on the last step's one-step target; ``last``: the row t+m-1 as
    stored (its obs, action, reward, next_obs, terminated). So ``head.reward + head.discount *
    last.reward`` is ``sample_n_step``'s reward and ``head.discount * gamma`` its discount.
    """
    start, rows, alive, m = _windows(state, key, batch_size, n, "sample_n_step_head")
    gamma = jnp.asarray(gamma, jnp.float32)
    powers = gamma ** jnp.arange(n, dtype=jnp.float32)
    before_last = alive & (jnp.arange(n) < (m - 1)[:, None])
    reward = jnp.sum(jnp.where(before_last, state.data.reward[rows] * powers, 0.0), axis=1)
    first = jax.tree.map(lambda d: d[start], state.data)
    head = first.replace(reward=reward.astype(first.reward.dtype), episode_end=None,
                         discount=gamma ** (m - 1).astype(jnp.float32))
    last_row = rows[jnp.arange(batch_size), m - 1]
    last = jax.tree.map(lambda d: d[last_row], state.data).replace(episode_end=None)
    return head, last


def _windows(state: BufferState, key: jax.Array, batch_size: int, n: int, caller: str):
    """The n-step windows of ``sample_n_step``: start rows ``[B]``, the window's rows ``[B, n]``,
    which of them are in the return ``[B, n]``, and their count m ``[B]`` (>= 1)."""
    if state.data.episode_end is None:
        raise ValueError(f"{caller} needs a buffer that stores episode_end (make it from "
                         "interact.example_transition(..., episode_end=True))")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n={n!r} is invalid: allowed an integer >= 1")
    capacity = state.capacity
    start = rng.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    rows = (start[:, None] + jnp.arange(n)) % capacity  # [B, n]
    newest = (state.insert - 1 - start) % capacity  # how many rows follow the start
    ended = state.data.episode_end[rows].astype(bool)
    # step j is in the return when it exists and no earlier step of the window ended an episode
    before_end = jnp.cumsum(ended, axis=1) - ended == 0
    alive = (jnp.arange(n) <= newest[:, None]) & before_end
    return start, rows, alive, alive.sum(axis=1)


def sampler(n_step: int = 1, gamma: float | jax.Array | None = None):
    """``(state, key, batch_size) -> batch``: ``sample`` for ``n_step = 1``, else
    ``sample_n_step`` with ``n_step`` and ``gamma`` (then required)."""
    if n_step == 1:
        return sample
    if gamma is None:
        raise ValueError(f"n_step={n_step} needs gamma, the discount of the returns")
    return lambda state, key, batch_size: sample_n_step(state, key, batch_size, n_step, gamma)


def can_sample(state: BufferState, min_size: int = 1) -> jax.Array:
    """Whether the buffer holds at least ``min_size`` items."""
    return state.size >= min_size


def sample_mixed(real: BufferState, imagined: BufferState, key: jax.Array, num_real: int,
                 num_imagined: int, n_step: int = 1, gamma: float | jax.Array | None = None
                 ) -> Any:
    """``num_real`` samples of ``real`` followed by ``num_imagined`` of ``imagined`` (MBPO's
    minibatch of env and model data), with samples of ``real`` in the imagined rows while
    ``imagined`` is still empty (no rollout has produced a valid transition yet).

    With ``n_step > 1`` the real samples are n-step returns (``sample_n_step``, ``real`` one
    stream with its ``episode_end`` flags). Imagined rows keep the ``discount`` they were
    stored with (multi-step returns along model rollouts, ``rollout.branch_returns``); where
    one part has discounts and the other not, the other's rows get ``discount`` = ``gamma``
    (then required)."""
    discounted = n_step > 1 or (num_imagined > 0 and imagined.data.discount is not None)
    if discounted and gamma is None:
        raise ValueError("sample_mixed needs gamma: n_step > 1 or the imagined rows carry "
                         "discounts")
    key_real, key_imagined = jax.random.split(key)
    draw_real = sampler(n_step, gamma)
    with_discount = lambda b, k: (b if b.discount is not None or not discounted
                                  else b.replace(discount=jnp.full((k,), gamma, jnp.float32)))
    batch = with_discount(draw_real(real, key_real, num_real), num_real)
    if num_imagined == 0:
        return batch
    fake = with_discount(sample(imagined, key_imagined, num_imagined), num_imagined)
    backup = with_discount(draw_real(real, key_imagined, num_imagined), num_imagined)
    fake = jax.tree.map(lambda f, b: jnp.where(can_sample(imagined), f, b), fake, backup)
    return jax.tree.map(lambda r, f: jnp.concatenate([r, f]), batch, fake)
