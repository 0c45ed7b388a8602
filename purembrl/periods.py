"""The schedule of an evaluation period of the off-policy loop (``purembrl.offpolicy``): the
random keys of its steps and periodic parts, and the summary of their infos over the period.

Both follow nested blocks: a period of ``length`` steps whose parts run every ``freqs[0]``,
``freqs[1]``, ... steps (outermost first) is ``ceil(length / freqs[0])`` blocks of
``ceil(freqs[0] / freqs[1])`` blocks ... of steps. When each period divides the one outside
it, the keys and the nested means are exactly those of nested ``lax.scan``s over blocks.
"""

from __future__ import annotations

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
