"""Small helpers shared by the tests."""

import jax


def seed_slice(tree, i):
    """Seed ``i`` of a pytree whose leaves have a leading seed axis."""
    return jax.tree.map(lambda x: x[i], tree)
