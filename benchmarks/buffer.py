"""purembrl's replay buffer vs flashbax's flat buffer: add and sample cost, side by side.

Both buffers hold the same Pendulum-sized ``Transition`` (obs 3, action 1, reward, next obs 3,
terminated) in a 100k-item store. Each operation runs 2,000 times inside one jitted ``lax.scan``
(so dispatch is not measured), for one seed and vmapped over 8 seeds, best of 5 repeats:

* add 1 item (one environment step), add 256 items (a batch of model rollouts),
* sample 256 items from a full buffer.

flashbax is not a purembrl dependency; run this in an environment that has both:

    python3 -m venv /tmp/venv-fbx
    /tmp/venv-fbx/bin/pip install "jax==0.10.2" "flax==0.12.8" "chex==0.1.92" flashbax
    /tmp/venv-fbx/bin/pip install --no-deps -e .
    /tmp/venv-fbx/bin/python benchmarks/buffer.py
"""

from __future__ import annotations

import platform
import time

import jax
import jax.numpy as jnp

from purembrl import buffer
from purembrl.types import Transition

CAPACITY, REPEATS, BATCH = 100_000, 2_000, 256


def item():
    return Transition(obs=jnp.zeros(3), action=jnp.zeros(1), reward=jnp.zeros(()),
                      next_obs=jnp.zeros(3), terminated=jnp.zeros((), bool))


def items(key, n):
    return jax.tree.map(lambda x: jax.random.normal(key, (n, *x.shape)).astype(x.dtype), item())


def shifted(batch, i):
    """A different batch at each iteration, so no add can be folded away."""
    return batch.replace(reward=batch.reward + i)


def checksum(data):
    """Depends on every stored reward, so the adds must really happen."""
    return data.reward.sum()


def timed(fn, *args):
    jax.block_until_ready(fn(*args))  # compile
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best / REPEATS * 1e6  # microseconds per operation


def ours(n_add):
    def add_many(key):
        state = buffer.init(item(), CAPACITY)
        batch = items(key, n_add)
        state, _ = jax.lax.scan(lambda s, i: (buffer.add(s, shifted(batch, i)), None), state,
                                jnp.arange(REPEATS))
        return checksum(state.data)

    def sample_many(key):
        state = buffer.add(buffer.init(item(), CAPACITY), items(key, CAPACITY))

        def body(total, k):
            return total + buffer.sample(state, k, BATCH).reward.sum(), None

        return jax.lax.scan(body, 0.0, jax.random.split(key, REPEATS))[0]

    return add_many, sample_many


def flashbax_fns(n_add):
    import warnings

    import flashbax as fbx

    warnings.filterwarnings("ignore", message="`sample_sequence_length` greater")

    fb = fbx.make_flat_buffer(max_length=CAPACITY, min_length=1, sample_batch_size=BATCH,
                              add_batch_size=n_add, add_sequences=False)

    def add_many(key):
        state = fb.init(item())
        batch = items(key, n_add)
        state, _ = jax.lax.scan(lambda s, i: (fb.add(s, shifted(batch, i)), None), state,
                                jnp.arange(REPEATS))
        return checksum(state.experience)

    def sample_many(key):
        state = fb.init(item())
        state = fb.add(state, items(key, n_add))
        # fill the whole store without timing it
        full = jax.tree.map(lambda x: jnp.broadcast_to(x[:, :1], x.shape), state.experience)
        state = state.replace(experience=full, is_full=jnp.array(True))

        def body(total, k):
            return total + fb.sample(state, k).experience.first.reward.sum(), None

        return jax.lax.scan(body, 0.0, jax.random.split(key, REPEATS))[0]

    return add_many, sample_many


def main():
    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} "
          f"{jax.default_backend()} device(s), jax {jax.__version__}")
    key = jax.random.key(0)
    keys8 = jax.random.split(key, 8)
    rows = []
    for label, n_add, which in [("add 1", 1, 0), ("add 256", BATCH, 0), ("sample 256", 1, 1)]:
        ours_fn = ours(n_add)[which]
        fbx_fn = flashbax_fns(n_add)[which]
        for seeds, arg in [(1, key), (8, keys8)]:
            wrap = (lambda f: jax.jit(f)) if seeds == 1 else (lambda f: jax.jit(jax.vmap(f)))
            t_ours = timed(wrap(ours_fn), arg)
            t_fbx = timed(wrap(fbx_fn), arg)
            rows.append((label, seeds, t_ours, t_fbx))
    print(f"{'operation':<12}{'seeds':>6}{'purembrl us':>14}{'flashbax us':>14}{'ratio':>8}")
    for label, seeds, t_ours, t_fbx in rows:
        print(f"{label:<12}{seeds:>6}{t_ours:>14.2f}{t_fbx:>14.2f}{t_fbx / t_ours:>7.2f}x")
    print("ratio = flashbax time / purembrl time (above 1: purembrl is faster)")


if __name__ == "__main__":
    main()
