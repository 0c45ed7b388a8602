"""``purembrl.rng``: draws with ``jax.random``'s numbers and fewer compiled kernels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import rng


@pytest.mark.parametrize("shape, low, high", [
    ((7,), 0, 5), ((3, 4), 0, 1_000_003), ((), 2, 9), ((5,), 0, 1), ((4,), 3, 3),
    ((6,), -5, 2**31 - 1), ((9,), 0, 2**17 + 3), ((2, 2), 7, -4)])
def test_randint_is_jax_randint(shape, low, high):
    for seed in range(20):
        key = jax.random.key(seed)
        np.testing.assert_array_equal(rng.randint(key, shape, low, high),
                                      jax.random.randint(key, shape, low, high))


def test_randint_is_jax_randint_under_jit_and_vmap_with_traced_bounds():
    keys = jax.random.split(jax.random.key(1), 9)
    high = jnp.arange(1, 10) * 1000
    want = jax.vmap(lambda k, h: jax.random.randint(k, (11,), 0, h))(keys, high)
    got = jax.jit(jax.vmap(lambda k, h: rng.randint(k, (11,), 0, h)))(keys, high)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == jnp.int32 and len(np.unique(np.asarray(got))) > 50


def test_randint_refuses_bounds_beyond_int32():
    with pytest.raises(ValueError, match="maxval=2147483648 does not fit int32"):
        rng.randint(jax.random.key(0), (2,), 0, 2**31)
