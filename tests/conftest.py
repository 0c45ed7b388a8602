import os
import shutil
import tempfile

import jax
import pytest

# One persistent compilation cache for the whole test run, shared by the in-process tests, the
# pytest-xdist workers and the command-line subprocesses (never the user's cache): many tests
# build the same program again from fresh closures (a stopped run and its resume, the same CLI
# command run twice), and JAX's cache is keyed on the compiled program, so the second build
# loads the first one's executable instead of compiling it again. A loaded executable is the stored
# compile's, so no number changes (tests/test_cli.py checks that for the command line).
# The process that starts the run (pytest's controller) makes the directory; its workers inherit
# the variable, and the controller removes the directory at the end.
_OWNER = "PUREMBRL_TEST_CACHE" not in os.environ
if _OWNER:
    os.environ["PUREMBRL_TEST_CACHE"] = tempfile.mkdtemp(prefix="purembrl-test-cache-")
CACHE_DIR = os.environ["PUREMBRL_CACHE_DIR"] = os.environ["PUREMBRL_TEST_CACHE"]
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)


def pytest_unconfigure(config):
    if _OWNER:
        shutil.rmtree(CACHE_DIR, ignore_errors=True)


@pytest.fixture
def no_compile_cache():
    """Compile everything here (tests that count compiles): the persistent cache off for the
    test, as it was after it."""
    from jax.experimental.compilation_cache import compilation_cache

    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_enable_compilation_cache", enabled)
    compilation_cache.reset_cache()


@pytest.fixture
def keys():
    """Four independent seeds."""
    return jax.random.split(jax.random.key(1234), 4)
