"""Small helpers shared by the tests."""

import os
import tempfile

import jax
from flax import struct


def seed_slice(tree, i):
    """Seed ``i`` of a pytree whose leaves have a leading seed axis."""
    return jax.tree.map(lambda x: x[i], tree)


def writable(directory) -> bool:
    """Whether a file can be created in ``directory`` (root passes ``os.access`` regardless)."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory):
            return True
    except OSError:
        return False


# An existing directory that refuses new files even to root (sysfs), if this machine has one.
UNWRITABLE = next((d for d in ("/sys/kernel", "/sys", "/proc/self")
                   if os.path.isdir(d) and not writable(d)), None)


@struct.dataclass
class GrowConfig:
    """The config of the tests' stand-in algorithms whose numbers overflow float32 (the
    divergence guard's tests): ``iterations`` iterations (or episodes), starting at
    10^(``low`` + 20u)."""

    env: str = struct.field(pytree_node=False, default="none")
    iterations: int = struct.field(pytree_node=False, default=12)
    low: float = struct.field(pytree_node=False, default=20.0)
