"""Random draws with the numbers of ``jax.random`` and fewer compiled kernels.

On the CPU, JAX lowers every Threefry hash to its own small loop, and XLA compiles each of
them (its setup, the loop, the output) into separate kernels; compile time follows the number
of kernels (benchmarks/RESULTS.md, "Compile time of every algorithm's program").
``jax.random.randint`` hashes three times per call: it splits its key, then draws the high
and the low 32 bits of each number from the two halves. ``randint`` here draws both halves in
one vmapped hash (Threefry is elementwise in its keys and counters, so the bits are the same)
and then takes the same remainder: every number equals ``jax.random.randint``'s
(``tests/test_rng.py``). In MBPO's step program (buffer sampling, the model's members, the
fit's minibatches) that is 84 fewer fused kernels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_INT32_MAX = 2**31 - 1


def randint(key: jax.Array, shape, minval, maxval) -> jax.Array:
    """``jax.random.randint(key, shape, minval, maxval)`` for int32, the same numbers.

    Uniform integers in ``[minval, maxval)`` (``minval`` where ``maxval <= minval``), with
    ``jax.random.randint``'s modulus over 64 random bits per number (its bias, negligible
    unless the range is near 2^31). ``minval`` and ``maxval`` broadcast to ``shape`` and must
    fit int32 (``ValueError`` for a Python int that does not)."""
    for name, value in (("minval", minval), ("maxval", maxval)):
        if isinstance(value, int) and not -_INT32_MAX - 1 <= value <= _INT32_MAX:
            raise ValueError(f"{name}={value} does not fit int32: use jax.random.randint")
    shape = tuple(shape)
    low = jnp.broadcast_to(jnp.asarray(minval, jnp.int32), shape)
    high = jnp.broadcast_to(jnp.asarray(maxval, jnp.int32), shape)
    bits = jax.vmap(lambda k: jax.random.bits(k, shape, jnp.uint32))(jax.random.split(key))
    span = jnp.where(high <= low, jnp.uint32(1), (high - low).astype(jnp.uint32))
    # 64 bits folded into [0, span) as jax.random.randint folds them, in uint32 arithmetic
    # (its products wrap where it wraps): (hi mod span) * (2^32 mod span) + (lo mod span),
    # mod span, with 2^32 mod span taken as (2^16 mod span)^2 mod span
    wrap = jnp.uint32(2**16) % span
    wrap = (wrap * wrap) % span
    offset = ((bits[0] % span) * wrap + bits[1] % span) % span
    return low + offset.astype(jnp.int32)
