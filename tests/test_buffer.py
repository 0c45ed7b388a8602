import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import buffer
from purembrl.types import Transition

from .helpers import seed_slice


def example():
    return Transition(obs=jnp.zeros(3), action=jnp.zeros((), jnp.int32), reward=jnp.zeros(()),
                      next_obs=jnp.zeros(3), terminated=jnp.zeros((), bool))


def batch(values):
    v = jnp.asarray(values, jnp.float32)
    return Transition(obs=jnp.repeat(v[:, None], 3, 1), action=v.astype(jnp.int32), reward=v,
                      next_obs=jnp.repeat(v[:, None] + 1, 3, 1), terminated=v > 100)


def stored_rewards(state):
    return np.asarray(state.data.reward[: int(state.size)])


def test_init_is_empty_and_preallocated():
    state = buffer.init(example(), 10)
    assert state.capacity == 10 and int(state.size) == 0 and int(state.insert) == 0
    assert state.data.obs.shape == (10, 3) and state.data.action.dtype == jnp.int32
    assert not bool(buffer.can_sample(state))


@pytest.mark.parametrize("capacity", [0, -3, 2.5])
def test_bad_capacity(capacity):
    with pytest.raises(ValueError, match="capacity"):
        buffer.init(example(), capacity)


def test_add_wraps_around_in_order():
    state = buffer.init(example(), 5)
    state = buffer.add(state, batch([1, 2, 3]))
    state = buffer.add(state, batch([4, 5, 6, 7]))
    assert int(state.size) == 5 and int(state.insert) == 2
    np.testing.assert_array_equal(np.asarray(state.data.reward), [6, 7, 3, 4, 5])
    np.testing.assert_array_equal(np.asarray(state.data.next_obs[:, 0]), [7, 8, 4, 5, 6])


def test_mask_skips_items_and_keeps_order():
    state = buffer.init(example(), 6)
    mask = jnp.array([True, False, True, False, True])
    state = buffer.add(state, batch([1, 2, 3, 4, 5]), mask)
    assert int(state.size) == 3
    np.testing.assert_array_equal(stored_rewards(state), [1, 3, 5])
    state = buffer.add(state, batch([9, 9]), jnp.array([False, False]))
    assert int(state.size) == 3 and int(state.insert) == 3


def test_batch_larger_than_capacity_keeps_the_last_items():
    state = buffer.init(example(), 4)
    state = buffer.add(state, batch([1]))
    state = buffer.add(state, batch(np.arange(10, 20)),
                       jnp.arange(10) != 8)  # item 18 is masked out
    assert int(state.size) == 4
    assert sorted(np.asarray(state.data.reward).tolist()) == [15, 16, 17, 19]


def test_sample_draws_only_filled_entries_uniformly():
    state = buffer.init(example(), 1000)
    state = buffer.add(state, batch(np.arange(1, 11)))
    sample = jax.jit(buffer.sample, static_argnums=2)(state, jax.random.key(0), 20000)
    values = np.asarray(sample.reward)
    assert set(values.tolist()) == set(range(1, 11))
    counts = np.bincount(values.astype(int))[1:]
    assert counts.min() > 1700 and counts.max() < 2300  # 2000 expected per value
    # transitions stay whole: each sampled item's fields belong together
    np.testing.assert_array_equal(np.asarray(sample.next_obs[:, 0]), values + 1)


def test_shape_mismatch_is_an_error():
    state = buffer.init(example(), 4)
    bad = batch([1, 2]).replace(obs=jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="does not match"):
        buffer.add(state, bad)


def test_jit_and_vmap_over_seeds(keys):
    def fill(key):
        state = buffer.init(example(), 8)
        values = jax.random.uniform(key, (12,))
        mask = jax.random.bernoulli(key, 0.7, (12,))
        state = buffer.add(state, batch(values), mask)
        return state, values, mask

    states, values, masks = jax.jit(jax.vmap(fill))(keys)
    for i in range(keys.shape[0]):
        expected = np.asarray(values[i])[np.asarray(masks[i])][-8:]
        state = seed_slice(states, i)
        assert int(state.size) == min(8, len(expected))
        assert sorted(stored_rewards(state).tolist()) == sorted(expected.tolist())
    samples = jax.jit(jax.vmap(buffer.sample, in_axes=(0, 0, None)), static_argnums=2)(
        states, keys, 5)
    assert samples.obs.shape == (keys.shape[0], 5, 3)


def _stream(rewards, ends, terminated, capacity):
    """A buffer of one stream of steps with their episode_end flags, added one at a time."""
    ex = example().replace(episode_end=jnp.zeros((), bool))
    state = buffer.init(ex, capacity)
    for t, (r, e, d) in enumerate(zip(rewards, ends, terminated, strict=True)):
        item = Transition(obs=jnp.full((1, 3), t, jnp.float32), action=jnp.array([t], jnp.int32),
                          reward=jnp.array([r], jnp.float32),
                          next_obs=jnp.full((1, 3), t + 0.5, jnp.float32),
                          terminated=jnp.array([d]), episode_end=jnp.array([e]))
        state = buffer.add(state, item)
    return state


def _n_step_by_hand(rewards, ends, terminated, t, newest, n, gamma):
    """(return, index of the last step, its terminated, discount) from step t."""
    total, j = 0.0, 0
    while True:
        total += gamma ** j * rewards[t + j]
        if ends[t + j] or t + j == newest or j == n - 1:
            return total, t + j, terminated[t + j], gamma ** (j + 1)
        j += 1


@pytest.mark.parametrize("capacity", [16, 8])  # 8: the 11 steps wrap around
def test_n_step_returns_stop_at_episode_ends_and_at_the_newest_step(capacity):
    rewards = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    ends = [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]  # truncated after step 2, terminated after 7
    terminated = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    state = _stream(rewards, ends, terminated, capacity)
    n, gamma = 4, 0.9
    batch = buffer.sample_n_step(state, jax.random.key(3), 256, n, gamma)
    oldest = len(rewards) - int(state.size)
    seen = set()
    for i in range(256):
        t = int(batch.action[i])  # the start step (action = step number)
        assert oldest <= t < len(rewards)
        ret, last, term, discount = _n_step_by_hand(rewards, ends, terminated, t,
                                                    len(rewards) - 1, n, gamma)
        np.testing.assert_allclose(float(batch.reward[i]), ret, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(batch.next_obs[i]), last + 0.5)
        assert bool(batch.terminated[i]) == bool(term)
        np.testing.assert_allclose(float(batch.discount[i]), discount, rtol=1e-6)
        seen.add(t)
    assert seen == set(range(oldest, len(rewards)))  # every stored start was checked
    assert batch.episode_end is None


@pytest.mark.parametrize("n", [1, 4])
def test_n_step_heads_stop_before_the_last_step_of_the_same_windows(n):
    """``sample_n_step_head`` splits ``sample_n_step``'s windows (same key, same windows) into
    the real return before the last step and the last step itself, checked by hand."""
    rewards = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    ends = [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]
    terminated = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    state = _stream(rewards, ends, terminated, 8)
    gamma, key = 0.9, jax.random.key(3)
    head, last = buffer.sample_n_step_head(state, key, 256, n, gamma)
    full = buffer.sample_n_step(state, key, 256, n, gamma)
    np.testing.assert_array_equal(head.obs, full.obs)
    np.testing.assert_array_equal(head.action, full.action)
    for i in range(256):
        t = int(head.action[i])
        ret, end, term, discount = _n_step_by_hand(rewards, ends, terminated, t,
                                                   len(rewards) - 1, n, gamma)
        assert int(last.action[i]) == end  # the last step's own row
        np.testing.assert_array_equal(np.asarray(last.obs[i]), float(end))
        np.testing.assert_array_equal(np.asarray(last.next_obs[i]), end + 0.5)
        assert float(last.reward[i]) == rewards[end] and bool(last.terminated[i]) == bool(term)
        m = end - t + 1
        np.testing.assert_allclose(float(head.discount[i]), gamma ** (m - 1), rtol=1e-6)
        np.testing.assert_allclose(float(head.reward[i]), ret - gamma ** (m - 1) * rewards[end],
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(float(head.discount[i]) * gamma, discount, rtol=1e-6)
    # the split recomposes sample_n_step's return
    np.testing.assert_allclose(head.reward + head.discount * last.reward, full.reward, rtol=1e-6)
    assert head.episode_end is None and last.episode_end is None
    with pytest.raises(ValueError, match="sample_n_step_head needs a buffer"):
        buffer.sample_n_step_head(buffer.init(example(), 4), key, 2, 3, 0.9)


def test_one_step_returns_are_the_uniform_samples_with_discount_gamma():
    state = _stream([1.0, 2.0, 3.0], [0, 1, 0], [0, 1, 0], 4)
    key = jax.random.key(1)
    one = buffer.sample_n_step(state, key, 32, 1, 0.9)
    plain = buffer.sample(state, key, 32)
    for field in ("obs", "action", "reward", "next_obs", "terminated"):
        np.testing.assert_array_equal(getattr(one, field), getattr(plain, field))
    np.testing.assert_allclose(one.discount, 0.9)


def test_n_step_sampling_needs_episode_ends_and_a_positive_n():
    with pytest.raises(ValueError, match="episode_end"):
        buffer.sample_n_step(buffer.init(example(), 4), jax.random.key(0), 2, 3, 0.9)
    state = _stream([1.0], [0], [0], 4)
    with pytest.raises(ValueError, match="n=0 is invalid"):
        buffer.sample_n_step(state, jax.random.key(0), 2, 0, 0.9)
