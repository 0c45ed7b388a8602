import os
import tempfile

import jax
import pytest

# The command line keeps compiled programs in a persistent cache (``--no-compile-cache`` turns
# it off); the suite's subprocesses use a fresh one per test process, never the user's.
os.environ["PUREMBRL_CACHE_DIR"] = tempfile.mkdtemp(prefix="purembrl-test-cache-")


@pytest.fixture
def keys():
    """Four independent seeds."""
    return jax.random.split(jax.random.key(1234), 4)
