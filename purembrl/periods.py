"""The schedule of an evaluation period of the off-policy loop (``purembrl.offpolicy``): the
random keys of its steps and periodic parts, the scan that runs them, and the summary of their
infos over the period.

Both follow nested blocks: a period of ``length`` steps whose parts run every ``freqs[0]``,
``freqs[1]``, ... steps (outermost first) is ``ceil(length / freqs[0])`` blocks of
``ceil(freqs[0] / freqs[1])`` blocks ... of steps. When each period divides the one outside
it, the keys and the nested means are exactly those of nested ``lax.scan``s over blocks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def period_keys(key: jax.Array, freqs: tuple[int, ...], length: int):
    """The keys of one evaluation period of ``length`` steps whose periodic parts run every
    ``freqs[0]``, ``freqs[1]``, ... steps (outermost first): ``(event_keys, step_keys)``, each
    ``[length]`` (``event_keys[i][j]``: the key level i's part uses if it runs at step j).

    Nested blocks: ``key`` is split into ``ceil(length / freqs[0])`` blocks, each block key into
    (its event key, its inner key), the inner key into ``ceil(freqs[0] / freqs[1])`` blocks, and
    so on; the innermost keys are split into one per step. When each period divides the one
    outside it, these are exactly the keys of nested ``lax.scan``s over blocks."""
    events, leaves = _key_grid(key, grid_shape(length, freqs))
    index, rest = [], np.arange(length)
    for freq in freqs:
        index.append(rest // freq)
        rest = rest % freq
    index.append(rest)
    step_keys = leaves[tuple(index)]
    return [e[tuple(index[:i + 1])] for i, e in enumerate(events)], step_keys


def _key_grid(key, sizes):
    keys = jax.random.split(key, sizes[0])
    if len(sizes) == 1:
        return [], keys
    pairs = jax.vmap(jax.random.split)(keys)
    inner_events, leaves = jax.vmap(lambda k: _key_grid(k, sizes[1:]))(pairs[:, 1])
    return [pairs[:, 0], *inner_events], leaves


def grid_shape(length: int, freqs: tuple[int, ...]) -> tuple[int, ...]:
    """The nested blocks of ``period_keys``: blocks per level, then steps per innermost block."""
    sizes, span = [], length
    for freq in freqs:
        sizes.append(-(-span // freq))
        span = freq
    return (*sizes, span)


def summarise(info: dict, flags, latest: dict, grid: tuple[int, ...] | None, every: int):
    """One part's per-step ``info`` ``[length]`` over a period: ``(summary, new latest)``.

    ``grid``: the periods nest, the part ran every ``every`` steps from the first, and the
    summary is the nested means over ``grid`` (``any`` for flags at the top), as nested scans
    computed them. Otherwise the mean over the steps where ``flags`` (``None``: every step;
    ``any`` for flags), and ``latest`` where the part did not run in the period."""
    summary, new_latest = {}, {}
    for name, x in info.items():
        if grid is not None:
            v = x[::every].reshape(grid)
            while v.ndim > 1:
                v = jnp.mean(v, axis=-1)
            summary[name] = v.any() if v.dtype == bool else v.mean()
            new_latest[name] = x[-1 - (len(x) - 1) % every]
            continue
        ran = jnp.ones(x.shape, bool) if flags is None else flags
        count = jnp.sum(ran)
        last = x[len(x) - 1 - jnp.argmax(ran[::-1])]
        new_latest[name] = jnp.where(count > 0, last, latest[name])
        if x.dtype == bool:
            value = jnp.any(ran & x)
        else:
            dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.float32
            value = jnp.nanmean(jnp.where(ran, x.astype(dtype), jnp.nan))
        summary[name] = jnp.where(count > 0, value, latest[name])
    return summary, new_latest


class Event(NamedTuple):
    """A periodic part of a loop: ``part(state, key) -> (state, info)``, run at step ``t`` when
    ``(offset + t) % every == 0``; it changes ``state.<field>`` only (a struct dataclass)."""

    name: str
    part: Callable[[Any, jax.Array], tuple[Any, dict]]
    field: str
    every: int
    offset: int = 0

    def due(self, t: jax.Array):
        """The step's flag (``None``: every step, no branch needed)."""
        return None if self.every == 1 else (self.offset + t) % self.every == 0


def when(flag, event: Event, state, key):
    """``event.part`` on ``state`` where ``flag`` (``None``: always), else the state unchanged
    and zeros for its info. Only ``event.field`` passes through the ``lax.cond``: its other
    operands are read, not returned, so XLA need not copy them."""
    def run(s, k):
        new, info = event.part(s, k)
        return getattr(new, event.field), info

    if flag is None:
        value, info = run(state, key)
    else:
        shapes = jax.eval_shape(run, state, key)[1]
        skipped = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        value, info = jax.lax.cond(flag, run, lambda s, k: (getattr(s, event.field), skipped),
                                   state, key)
    return state.replace(**{event.field: value}), info


def events_at(state, events: list[Event], keys, t):
    """The ``events`` due at step ``t``, in order: ``(state, flags, infos)`` by event name."""
    flags, infos = {}, {}
    for event, key in zip(events, keys, strict=True):
        flags[event.name] = event.due(t)
        state, infos[event.name] = when(flags[event.name], event, state, key)
    return state, flags, infos


def scan_period(events: list[Event], step: Callable, length: int, stride: int):
    """``(state, start, event_keys, step_keys) -> (state, flags, infos)``: a period's ``length``
    steps from step ``start`` (a multiple of ``stride``), keys from ``period_keys``; at each step
    the due ``events`` in order, then ``step(state, t, step_key) -> (state, flags, infos)``.
    Flags and infos come ``[length]`` by part name (zeros where a part was skipped).

    The steps run as blocks of ``block`` steps, ``block`` the largest number dividing
    ``length``, ``stride`` and the periods of the leading events that skip steps: such an event
    can only fall on a block's first step, so its ``lax.cond`` (whose operand is the whole
    state, buffers included) is decided once per block instead of once per step. The other
    events are decided per step. Keys, order and outputs are those of one scan over the steps
    with a cond per event and step."""
    outer = list(itertools.takewhile(lambda e: e.every > 1, events))
    inner = events[len(outer):]
    block = math.gcd(length, stride, *(e.every for e in outer)) if outer else length
    num_blocks = length // block

    def run(state, start, event_keys, step_keys):
        def body(state, xs):
            j, keys, step_key = xs
            state, flags, infos = events_at(state, inner, keys, start + j)
            state, step_flags, step_infos = step(state, start + j, step_key)
            return state, ({**flags, **step_flags}, {**infos, **step_infos})

        def block_body(state, xs):
            b, outer_keys, inner_keys, block_keys = xs
            state, flags, infos = events_at(state, outer, outer_keys, start + b * block)
            state, per_step = jax.lax.scan(body, state, (b * block + jnp.arange(block),
                                                         inner_keys, block_keys))
            return state, (flags, infos, per_step)

        blocks = lambda x: x.reshape(num_blocks, block, *x.shape[1:])
        state, (flags, infos, (step_flags, step_infos)) = jax.lax.scan(block_body, state, (
            jnp.arange(num_blocks), [k[::block] for k in event_keys[:len(outer)]],
            [blocks(k) for k in event_keys[len(outer):]], blocks(step_keys)))
        # an outer event's flag and info at each block's first step; elsewhere the unset flag
        # and the zeros of a skipped part, as a cond per step gives them
        spread = lambda x: jnp.zeros((length, *x.shape[1:]), x.dtype).at[::block].set(x)
        per_step = lambda x: x.reshape(length, *x.shape[2:])
        return (state, {**jax.tree.map(spread, flags), **jax.tree.map(per_step, step_flags)},
                {**jax.tree.map(spread, infos), **jax.tree.map(per_step, step_infos)})

    return run
