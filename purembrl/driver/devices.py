"""Devices and hosts: seeds (and sweep points) placed over every visible device, across hosts.

One 1-D ``jax.sharding.Mesh`` over ``jax.devices()``: a ``jit`` of a ``vmap`` over the batch
axis then runs each device's share where its data is. Several hosts join through
``jax.distributed`` (``init_distributed``); process 0 alone writes files.
"""

from __future__ import annotations

import jax
import numpy as np

from purembrl import checkpoint as ckpt


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> None:
    """Join a multi-host run (``jax.distributed.initialize``) before anything touches a device.

    Every process runs the same command; ``jax.devices()`` then lists the devices of all of
    them, and ``run`` / ``sweep`` shard seeds and sweep points over that global mesh. With no
    arguments JAX detects the cluster (SLURM, TPU pods, ...); otherwise give all three. On
    CPUs, cross-process collectives use gloo. Only process 0 writes files; every process
    reads a checkpoint on resume, so ``out`` must be on a file system they share."""
    # Only the CPU backend reads this; asking which backend is in use would start it too soon.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


def is_main_process() -> bool:
    """Whether this process writes results (process 0 of a multi-host run; always True on
    one host)."""
    return jax.process_index() == 0


def _as_key_data(fn, x):
    """``fn`` applied to a typed key array through its raw ``key_data``, the key type kept."""
    return jax.random.wrap_key_data(fn(jax.random.key_data(x)), impl=jax.random.key_impl(x))


def shard_batch(inputs):
    """Place arrays with a leading batch axis across every visible device (a 1-D ``Mesh``):
    a ``jit`` of a ``vmap`` over that axis then runs each device's share of seeds (and sweep
    points) where the data is. One device, or a batch the device count does not divide: the
    inputs are returned as they are (each process then runs the whole batch).

    On several hosts (``init_distributed``) every process holds the whole batch (keys and
    configs are computed from the seed, identically everywhere) and contributes the shards
    of its own devices."""
    devices = jax.devices()
    batch = jax.tree.leaves(inputs)[0].shape[0]
    if len(devices) == 1 or batch % len(devices):
        return inputs
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    if jax.process_count() == 1:
        return jax.device_put(inputs, spec)

    def place(x):
        if ckpt.is_key(x):
            return _as_key_data(place, x)
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, spec, lambda index: x[index])

    return jax.tree.map(place, inputs)


def to_host(tree):
    """The tree with every leaf whole on this process. Arrays sharded across processes (a
    multi-host run) are gathered, a collective every process must call; on one host the tree
    is returned as it is."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    def gather(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        if ckpt.is_key(leaf):
            return _as_key_data(gather, leaf)
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree.map(gather, tree)
