"""Small helpers shared by the tests."""

import os
import tempfile

import jax


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
