"""Checkpoints of a whole training state: one file, written atomically, checked on load.

A checkpoint holds any pytree of arrays (the driver's carry: parameters, optimiser states,
replay buffers, env states, PRNG keys and step counters, with a leading seed axis), named
NumPy arrays (the metrics so far) and a JSON-able ``meta`` dict, in one uncompressed ``.npz``:

* **atomic**: written to a unique temporary file beside ``PATH`` (``.NAME.XXXX.tmp``),
  flushed to disk, then renamed over ``PATH`` (``os.replace``), so a process killed at any
  moment leaves either the previous complete checkpoint or the new one, never a mix, and two
  writers never share a temporary file;
* **checked**: a SHA-256 over every array's dtype, shape and bytes is stored in ``meta`` and
  recomputed on load; a truncated or altered file raises ``CheckpointError`` (a
  ``ValueError``) naming the file and what is wrong, and nothing is loaded;
* **small**: a replay buffer (``purembrl.buffer.BufferState``) is stored up to its largest
  ``size`` only (the rows past it are zeros, never written; checked bytewise before a cut, and
  restored as zeros), so a checkpoint early in a run with a million-row buffer is not
  mostly zeros;
* **exact**: arrays are stored bit for bit; typed PRNG keys (``jax.random.key``) are stored as
  their key data with the implementation's name and rewrapped on load, so a restored run
  continues exactly where it stopped.

``load`` needs a template of the tree (``jax.eval_shape`` of the state's ``init`` gives one
for free): pytree structure is code, not data, so it is not pickled into the file, and a
template whose leaves differ in number, shape or dtype from the file is refused.

Why NumPy's ``.npz`` and not orbax-checkpoint or ``flax.serialization``: all three are fast
next to a chunk of training (``benchmarks/checkpoint.py``, numbers in ``benchmarks/RESULTS.md``);
what decides is that ``.npz`` is one file, so one rename makes a save atomic (orbax writes a
directory of files), it stores typed PRNG keys and bfloat16 exactly with their dtypes recorded,
and it needs nothing beyond NumPy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purembrl.buffer import BufferState

FORMAT = "purembrl-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or does not fit the run it is loaded into."""


def is_key(x) -> bool:
    """Whether ``x`` is a typed PRNG key array (stored and moved as its ``key_data``)."""
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(path: str | os.PathLike, tree: Any, arrays: dict[str, np.ndarray] | None = None,
         meta: dict[str, Any] | None = None) -> None:
    """Write ``tree`` (a pytree of arrays), named ``arrays`` and ``meta`` to ``path``,
    atomically (see the module docstring)."""
    path = os.fspath(path)
    leaves = jax.tree.leaves(tree)
    cuts = _unfilled_rows(tree)
    stored: dict[str, np.ndarray] = {}
    key_impls: dict[str, str] = {}
    views: dict[str, str] = {}

    def put(name, value):
        value = np.asarray(value)
        if value.dtype.kind == "V":  # bfloat16 and other ml_dtypes: stored as raw unsigned ints
            views[name] = value.dtype.name
            value = value.view(f"u{value.dtype.itemsize}")
        stored[name] = value

    for i, leaf in enumerate(leaves):
        if is_key(leaf):
            key_impls[str(i)] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        if str(i) in cuts:
            axis, filled, _ = cuts[str(i)]
            leaf = np.asarray(leaf)[(slice(None),) * axis + (slice(0, filled),)]
        put(f"leaf/{i}", leaf)
    for name, value in (arrays or {}).items():
        put(f"array/{name}", value)
    header = {"format": FORMAT, "num_leaves": len(leaves), "key_impls": key_impls,
              "views": views, "cuts": cuts, "sha256": _digest(stored), "meta": meta or {}}
    stored["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    write_atomically(path, lambda f: np.savez(f, **stored))


def _unfilled_rows(tree: Any) -> dict[str, tuple[int, int, int]]:
    """``{leaf index: (axis, rows kept, capacity)}`` for the storage leaves of every replay
    buffer in ``tree`` whose rows from the largest ``size`` on (over any leading seed or sweep
    axes) are all zero bytes, so that they can be left out and restored exactly."""
    cuts: dict[str, tuple[int, int, int]] = {}
    start = 0
    for node in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, BufferState)):
        count = len(jax.tree.leaves(node))
        if isinstance(node, BufferState):
            size = np.asarray(node.size)
            axis, filled = size.ndim, int(size.max(initial=0))
            for j, leaf in enumerate(jax.tree.leaves(node.data)):
                if is_key(leaf):
                    continue
                leaf = np.asarray(leaf)
                capacity = leaf.shape[axis]
                tail = leaf[(slice(None),) * axis + (slice(filled, None),)]
                if filled < capacity and not np.ascontiguousarray(tail).view(np.uint8).any():
                    cuts[str(start + j)] = (axis, filled, capacity)
        start += count
    return cuts


def write_atomically(path: str | os.PathLike, write: Callable[[Any], None],
                     mode: str = "wb") -> None:
    """Write ``path`` whole or not at all: ``write(file)`` fills a new temporary file beside it
    (a unique ``.NAME.XXXX.tmp``: two writers never share one), which is flushed to disk and
    renamed over ``path``. On any error the temporary file is removed and ``path`` is as it
    was."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".",
                               prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The raw stored arrays and header of a checkpoint, verified; ``CheckpointError`` if the
    file is missing, unreadable, truncated or fails its checksum."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} is unreadable ({err.strerror})") from None
    if magic != b"PK\x03\x04":  # an .npz is a zip archive; NumPy would try it as a pickle
        what = "empty" if not magic else ("zeroed" if not any(magic) else "another kind of file")
        raise CheckpointError(f"checkpoint {path} is corrupt: not a zip archive ({what}), so "
                              "not a purembrl checkpoint")
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt: "
                              f"{type(err).__name__}: {err})") from None
    if "header" not in stored:
        raise CheckpointError(f"checkpoint {path} has no header: not a purembrl checkpoint")
    try:
        header = json.loads(stored.pop("header").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} has a corrupt header ({err})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {header.get('format')!r}, "
                              f"expected {FORMAT!r}")
    if _digest(stored) != header.get("sha256"):
        raise CheckpointError(f"checkpoint {path} fails its SHA-256 check: the file was altered "
                              "or only partly written")
    for name, dtype in header.get("views", {}).items():
        stored[name] = stored[name].view(jnp.dtype(dtype))
    return stored, header


def load(path: str | os.PathLike, template: Any,
         check_meta: Callable[[dict[str, Any]], None] | None = None
         ) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
    """``(tree, arrays, meta)`` from ``path``; ``tree`` has ``template``'s structure (arrays or
    ``jax.ShapeDtypeStruct``s) and must match it leaf for leaf in shape and dtype.
    ``check_meta(meta)``, if given, runs first and may raise (e.g. a run's identity check)."""
    stored, header = read(path)
    if check_meta is not None:
        check_meta(header["meta"])
    leaves, treedef = jax.tree.flatten(template)
    if header["num_leaves"] != len(leaves):
        raise CheckpointError(f"checkpoint {path} holds {header['num_leaves']} arrays, this "
                              f"run's state has {len(leaves)}: it was written by other code or "
                              "another configuration")
    restored = []
    for i, (axis, filled, capacity) in header.get("cuts", {}).items():
        kept = stored[f"leaf/{i}"]  # the filled rows; the rest were zeros
        shape = list(kept.shape)
        shape[axis] = capacity - filled
        stored[f"leaf/{i}"] = np.concatenate([kept, np.zeros(shape, kept.dtype)], axis=axis)
    on_device = jax.device_put([stored[f"leaf/{i}"] for i in range(len(leaves))])
    for i, (like, value) in enumerate(zip(leaves, on_device, strict=True)):
        impl = header["key_impls"].get(str(i))
        if impl is not None:
            value = jax.random.wrap_key_data(value, impl=impl)
            if (jax.dtypes.issubdtype(like.dtype, jax.dtypes.prng_key)
                    and value.dtype != like.dtype):
                raise CheckpointError(
                    f"checkpoint {path} holds PRNG keys of JAX's {impl!r} implementation, this "
                    f"process makes {jax.config.jax_default_prng_impl!r} keys: run it with "
                    f"JAX_DEFAULT_PRNG_IMPL={impl} as when it was written")
        if value.shape != like.shape or value.dtype != like.dtype:
            raise CheckpointError(f"checkpoint {path}: array {i} is {value.dtype}"
                                  f"{list(value.shape)}, this run expects {like.dtype}"
                                  f"{list(like.shape)}")
        restored.append(value)
    arrays = {name[len("array/"):]: value for name, value in stored.items()
              if name.startswith("array/")}
    return jax.tree.unflatten(treedef, restored), arrays, header["meta"]


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``meta`` dict of a verified checkpoint."""
    return read(path)[1]["meta"]
