import jax
import pytest


@pytest.fixture
def keys():
    """Four independent seeds."""
    return jax.random.split(jax.random.key(1234), 4)
