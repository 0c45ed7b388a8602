"""The episode buffer with goal relabelling: ring writes, and goals that are future states of
the same episode (or, by strategy, the episode's own goal or a random stored state)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import relabel


def _episodes(n, length, first_id=0):
    """Episodes whose states encode (episode id, step): state = [id, t], next = [id, t + 1],
    goal = [-1 - id, 0] (never a reached state)."""
    ids = jnp.arange(first_id, first_id + n, dtype=jnp.float32)[:, None, None]
    t = jnp.arange(length, dtype=jnp.float32)[None, :, None]
    state = jnp.concatenate([jnp.broadcast_to(ids, (n, length, 1)),
                             jnp.broadcast_to(t, (n, length, 1))], -1)
    goal = jnp.concatenate([jnp.broadcast_to(-1 - ids, (n, length, 1)),
                            jnp.zeros((n, length, 1))], -1)
    return relabel.Episodes(state, jnp.zeros((n, length), jnp.int32),
                            state + jnp.array([0.0, 1.0]), goal)


def test_add_writes_a_ring_over_the_oldest():
    buf = relabel.init(3, 4, 2, (), jnp.int32)
    assert buf.state.shape == (3, 4, 2) and buf.action.shape == (3, 4)
    buf = relabel.add(buf, jnp.int32(0), _episodes(2, 4, first_id=0))
    buf = relabel.add(buf, jnp.int32(2), _episodes(2, 4, first_id=2))
    # slots 0, 1, 2 held ids 0, 1, 2; id 3 overwrote slot 0
    np.testing.assert_array_equal(np.asarray(buf.state[:, 0, 0]), [3, 1, 2])
    with pytest.raises(AssertionError):
        relabel.add(buf, jnp.int32(0), _episodes(1, 5))  # episodes of another length


@pytest.mark.parametrize("strategy", relabel.STRATEGIES)
def test_relabelled_goals_follow_the_strategy(strategy):
    length, count = 6, 5
    buf = relabel.add(relabel.init(8, length, 2, (), jnp.int32), jnp.int32(0),
                      _episodes(count, length))
    state, _, next_state, goal = relabel.sample(buf, jnp.int32(count), jax.random.key(0),
                                                4000, 0.8, 0.5, strategy)
    state, next_state, goal = map(np.asarray, (state, next_state, goal))
    assert state[:, 0].max() < count  # only stored episodes are sampled
    np.testing.assert_array_equal(next_state, state + [0, 1])
    future = (goal[:, 0] == state[:, 0]) & (goal[:, 1] >= state[:, 1] + 1)
    own_goal = goal[:, 0] == -1 - state[:, 0]
    if strategy == "future":
        assert future.all()
    elif strategy == "her":
        assert (future | own_goal).all()
        np.testing.assert_allclose(future.mean(), 0.5, atol=0.03)
    else:  # a future state, or any stored next state (some of them happen to be future)
        assert not own_goal.any() and (goal[:, 0] < count).all()
        assert 0.5 < future.mean() < 0.7
    # the future offset is Geometric(1 - g), truncated at the episode's last state
    offsets = goal[future, 1] - state[future, 1] - 1
    assert offsets.min() == 0 and (goal[future, 1] <= length).all()
    with pytest.raises(ValueError, match="strategy='last' is invalid"):
        relabel.sample(buf, jnp.int32(count), jax.random.key(0), 4, 0.8, 0.5, "last")
