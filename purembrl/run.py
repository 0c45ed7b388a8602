"""The driver: N seeds of any algorithm under one ``jit(vmap(...))``, in chunks, with results.

``run(algo, config, num_seeds)`` takes an algorithm module (anything with ``make_loop(config)``
returning a ``purembrl.loop.TrainLoop``), runs ``init`` for every seed at once, then the loop's
``step`` in chunks of iterations so a progress line (seeds, iteration, env steps, median return,
elapsed) moves on long runs, prints a final table (median and interquartile range over seeds at
each evaluation) and, given ``out``, writes ``metrics.json``, ``curve.csv`` and ``curve.png``.

The driver knows no algorithm: it reads only the metric names of the design contract
(``env_steps``, ``eval_return``) and, if the module defines it, ``curve(config) -> (x, y)``
naming the learning curve to plot (default ``("env_steps", "eval_return")``).

Chunking does not change results: a chunk is the same ``step`` scanned fewer times, so the
metrics of a chunked run equal those of ``make_train(config)(key)`` bit for bit.

Checkpoints: with ``out``, the whole state of all seeds (the loop's carry) and the metrics so
far are saved to ``out/checkpoint.npz`` after every chunk (``purembrl.checkpoint``: one file,
atomic rename, SHA-256 checked). ``resume=True`` continues from it; the resumed run's final
metrics are bit-identical to an uninterrupted run's. A checkpoint of another algorithm, config,
seed or seed count is refused with a ``CheckpointError`` naming what differs.
``stop_after_chunks`` ends a run early on purpose (the checkpoint then holds it, to be resumed).
For fault-injection tests, the environment variable ``PUREMBRL_KILL_AFTER_CHUNK=k`` makes the
process SIGKILL itself right after its k-th checkpoint of this call.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purembrl import checkpoint as ckpt
from purembrl.config import as_dict, field_types

CHECKPOINT = "checkpoint.npz"


@dataclass
class RunResult:
    """What a run returns: final states (leading seed axis) and metrics as NumPy arrays
    ``[num_seeds, num_iterations, ...]``, plus the wall-clock seconds it took."""

    state: Any
    metrics: dict[str, np.ndarray]
    seconds: float
    curve: tuple[str, str]
    complete: bool = True


def batched(fn, in_axes=0):
    """``jax.vmap(fn, in_axes)``, except that a batch of one runs ``fn`` on the single member
    and adds the batch axis back: the same result, faster. (XLA compiles the size-1 batch
    dimension of a vmapped matmul to slower kernels: one MBPO seed at mbrl-lib's work ran 12%
    slower under ``vmap`` on a 2-core Intel Xeon.)"""
    vmapped = jax.vmap(fn, in_axes=in_axes)

    def call(*args):
        axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        sizes = {leaf.shape[ax] for arg, ax in zip(args, axes, strict=True) if ax is not None
                 for leaf in jax.tree.leaves(arg)}
        if sizes != {1}:
            return vmapped(*args)
        members = [arg if ax is None else jax.tree.map(lambda x, ax=ax: jnp.take(x, 0, axis=ax),
                                                       arg)
                   for arg, ax in zip(args, axes, strict=True)]
        return jax.tree.map(lambda x: jnp.expand_dims(x, 0), fn(*members))

    return call


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """One key per seed, all derived from the integer ``seed``."""
    return jax.random.split(jax.random.key(seed), num_seeds)


def curve_of(algo: ModuleType, config: Any) -> tuple[str, str]:
    """The (x, y) metric names of ``algo``'s learning curve: its ``curve(config)`` if it has
    one, else ``("env_steps", "eval_return")``."""
    return algo.curve(config) if hasattr(algo, "curve") else ("env_steps", "eval_return")


def chunk_length(num_iterations: int, num_chunks: int) -> int:
    """A divisor of ``num_iterations`` near ``num_iterations / num_chunks``: equal chunks share
    one compiled function."""
    target = num_iterations / max(1, num_chunks)
    divisors = [d for d in range(1, num_iterations + 1) if num_iterations % d == 0]
    return min(divisors, key=lambda d: abs(math.log(d / target)))


def run(algo: ModuleType, config: Any, num_seeds: int = 1, *, seed: int = 0,
        out: str | os.PathLike | None = None, num_chunks: int = 10,
        progress: bool = True, table: bool = True, checkpoint: bool = True,
        resume: bool = False, stop_after_chunks: int | None = None) -> RunResult:
    """Train ``num_seeds`` seeds of ``algo`` with ``config``; see the module docstring.

    ``checkpoint``: save ``out/checkpoint.npz`` after every chunk (needs ``out``). ``resume``:
    continue from that checkpoint (``CheckpointError`` if it is missing, corrupt or from
    another run). ``stop_after_chunks``: return after this many chunks of this call
    (``RunResult.complete`` is then False unless the run ended)."""
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds} is invalid: allowed an integer >= 1")
    loop = algo.make_loop(config)
    curve = curve_of(algo, config)
    init, scan_steps = guarded(loop.init, lambda state: loop.step(state))
    carry, metrics, seconds, done = _drive(
        f"[{_name(algo)}] seeds {num_seeds}", batched(init),
        batched(scan_steps, in_axes=(0, None)),
        (seed_keys(seed, num_seeds),), loop.num_iterations,
        run_identity(algo, config, seed, num_seeds), curve, out=out, num_chunks=num_chunks,
        progress=progress, checkpoint=checkpoint, resume=resume,
        stop_after_chunks=stop_after_chunks)
    result = RunResult(state=carry[0], metrics=metrics, seconds=seconds, curve=curve,
                       complete=done == loop.num_iterations)
    if is_main_process():
        report_nonfinite(metrics, [f"seed {i}" for i in range(num_seeds)])
        if table:
            print(summary_table(metrics, curve))
        if out is not None:
            write_results(out, algo, config, seed, result)
    return result


@dataclass
class SweepResult:
    """A sweep's results: ``points`` (the varied fields' values per point, in order), metrics
    as NumPy arrays ``[num_points, num_seeds, num_iterations, ...]``, the final states with a
    leading ``num_points * num_seeds`` axis (point-major), and the wall-clock seconds."""

    points: list[dict[str, Any]]
    state: Any
    metrics: dict[str, np.ndarray]
    seconds: float
    curve: tuple[str, str]
    complete: bool = True


def sweep(algo: ModuleType, configs: Sequence[Any], num_seeds: int = 1, *,
          points: Sequence[dict[str, Any]] | None = None, seed: int = 0,
          out: str | os.PathLike | None = None, num_chunks: int = 10, progress: bool = True,
          table: bool = True, checkpoint: bool = True, resume: bool = False,
          stop_after_chunks: int | None = None) -> SweepResult:
    """Train every config of ``configs`` for ``num_seeds`` seeds in one ``jit(vmap(...))``.

    The configs may differ only in pytree-leaf fields (numbers: learning rates, discounts,
    coefficients); their leaves are stacked and vmapped like the seeds, so the whole grid is
    one compile. Every point uses the same ``num_seeds`` keys (common random numbers: points
    differ by their settings, not their luck). A config that differs in a static field (sizes,
    budgets, the env, anything that shapes the program) is a ``ValueError`` naming the field.
    ``points``: labels of the points (the varied fields and values) for the table and files.
    ``out`` gets ``sweep.json``, ``sweep.csv`` and ``sweep.png``; checkpoints and resume work as
    in ``run``."""
    configs = list(configs)
    if not configs:
        raise ValueError("a sweep needs at least one config")
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds} is invalid: allowed an integer >= 1")
    points = list(points) if points is not None else [{"point": i} for i in range(len(configs))]
    if len(points) != len(configs):
        raise ValueError(f"{len(points)} point labels for {len(configs)} configs")
    structure = jax.tree.structure(configs[0])
    for config, label in zip(configs, points, strict=True):
        if jax.tree.structure(config) != structure:
            differ = static_differences(configs[0], config)
            raise ValueError(f"sweep point {label}: differs from the first point in static "
                             f"field(s) {', '.join(differ) or '(structure)'}; a sweep can vary "
                             f"only numeric fields: {', '.join(sweepable_fields(type(config)))}")
    loop = algo.make_loop(configs[0])
    curve = curve_of(algo, configs[0])
    num_points = len(configs)
    stacked, keys = _sweep_inputs(configs, seed, num_seeds)
    init, scan_steps = guarded(*_sweep_member(algo))

    identity = sweep_identity(algo, configs, seed, num_seeds)
    label = f"[{_name(algo)} sweep] {num_points} points x {num_seeds} seeds"
    carry, metrics, seconds, done = _drive(
        label, batched(init), batched(scan_steps, in_axes=(0, None)), (stacked, keys),
        loop.num_iterations, identity, curve, out=out, num_chunks=num_chunks,
        progress=progress, checkpoint=checkpoint, resume=resume,
        stop_after_chunks=stop_after_chunks)
    if is_main_process():
        report_nonfinite(metrics,
                         [f"point {p} seed {i}" for p in points for i in range(num_seeds)])
    metrics = {k: v.reshape(num_points, num_seeds, *v.shape[1:]) for k, v in metrics.items()}
    result = SweepResult(points=points, state=carry[0][1], metrics=metrics, seconds=seconds,
                         curve=curve, complete=done == loop.num_iterations)
    if is_main_process():
        if table:
            print(sweep_table(result))
        if out is not None:
            write_sweep(out, algo, configs[0], seed, result)
    return result


def _sweep_inputs(configs: Sequence[Any], seed: int, num_seeds: int):
    """The batch a sweep is vmapped over: every config's leaves stacked and repeated per seed,
    and the same ``num_seeds`` keys for every point (point-major)."""
    stacked = jax.tree.map(lambda *xs: jnp.repeat(jnp.stack([jnp.asarray(x) for x in xs]),
                                                  num_seeds, axis=0), *configs)
    return stacked, jnp.tile(seed_keys(seed, num_seeds), len(configs))


def _sweep_member(algo: ModuleType):
    """One sweep member's ``(init(config, key), step(carry))``: its config rides in the carry,
    so each member builds its loop from its own (traced) settings."""
    def member_init(config, key):
        return config, algo.make_loop(config).init(key)

    def member_step(carry):
        config, state = carry
        state, metrics = algo.make_loop(config).step(state)
        return (config, state), metrics

    return member_init, member_step


def sweep_identity(algo: ModuleType, configs: Sequence[Any], seed: int,
                   num_seeds: int) -> dict[str, Any]:
    """What makes two sweeps the same sweep (stored in checkpoints, compared on resume)."""
    return {"algorithm": _name(algo), "sweep": _plain([as_dict(c) for c in configs]),
            "seed": seed, "num_seeds": num_seeds}


def sweepable_fields(config_cls: type, prefix: str = "") -> list[str]:
    """The (dotted) fields of a config class that a sweep may vary: its pytree leaves."""
    out = []
    hints = field_types(config_cls)
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("pytree_node", True):
            continue
        kind = hints.get(f.name)
        if dataclasses.is_dataclass(kind):
            out += sweepable_fields(kind, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def static_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the static fields in which two configs of one class differ."""
    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x) and dataclasses.is_dataclass(y):
            out += static_differences(x, y, f"{prefix}{f.name}.")
        elif not f.metadata.get("pytree_node", True) and _plain(_as_dict_value(x)) != _plain(
                _as_dict_value(y)):
            out.append(f"{prefix}{f.name}")
        elif (x is None) != (y is None):
            out.append(f"{prefix}{f.name}")
    return out


def _as_dict_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return as_dict(value)
    if isinstance(value, np.ndarray | jax.Array):
        return np.asarray(value).tolist()
    return value


def final_stats(values: np.ndarray) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile over seeds of the last evaluation ``[seeds, iters]``
    (NaN-aware, as ``quantiles``)."""
    med, q25, q75 = quantiles(values[:, -1])
    return float(med), float(q25), float(q75)


def sweep_table(result: SweepResult) -> str:
    """One row per point: its fields and the median [IQR] over seeds of the final value of
    the learning curve's y (and of ``eval_return`` if that is another metric)."""
    names = _columns(result.metrics, result.curve)
    fields = list(result.points[0])
    header = fields + [f"final {n} median [IQR]" for n in names]
    rows = []
    for i, point in enumerate(result.points):
        row = [f"{point[f]:g}" if isinstance(point[f], float) else str(point[f])
               for f in fields]
        for n in names:
            med, q25, q75 = final_stats(result.metrics[n][i])
            row.append(f"{med:.4g} [{q25:.4g}, {q75:.4g}]")
        rows.append(row)
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
    seeds = next(iter(result.metrics.values())).shape[1]
    return "\n".join([f"{len(result.points)} points x {seeds} seeds; the last evaluation",
                      fmt(header), *map(fmt, rows)])


def write_sweep(out: str | os.PathLike, algo: ModuleType, config: Any, seed: int,
                result: SweepResult) -> None:
    """``sweep.json`` (points, every metric ``[points, seeds, iterations, ...]``, the run),
    ``sweep.csv`` (one row per point: fields, final median and quartiles) and ``sweep.png``
    (median learning curve per point), each written atomically."""
    out = os.fspath(out)
    payload = {"points": _plain(result.points),
               "metrics": {k: v.tolist() for k, v in result.metrics.items()},
               "_run": {"algorithm": _name(algo), "base_config": as_dict(config), "seed": seed,
                        "seconds": result.seconds, "curve": list(result.curve),
                        "complete": result.complete}}
    _atomic_write(os.path.join(out, "sweep.json"), json.dumps(payload))
    names = _columns(result.metrics, result.curve)
    fields = list(result.points[0])
    lines = [",".join(fields + [f"{n}_{s}" for n in names for s in ("median", "q25", "q75")])]
    for i, point in enumerate(result.points):
        stats = [f"{v:.6g}" for n in names for v in final_stats(result.metrics[n][i])]
        lines.append(",".join([str(point[f]) for f in fields] + stats))
    _atomic_write(os.path.join(out, "sweep.csv"), "\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_name, y_name = result.curve
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, point in enumerate(result.points):
        y = result.metrics[y_name][i]
        x = (np.median(result.metrics[x_name][i], axis=0) if x_name in result.metrics
             else np.arange(1, y.shape[1] + 1))
        med, q25, q75 = quantiles(y)
        ax.plot(x, med, label=", ".join(f"{k}={v}" for k, v in point.items()))
        ax.fill_between(x, q25, q75, alpha=0.15)
    ax.set(xlabel=x_name.replace("_", " "), ylabel=y_name.replace("_", " "),
           title=f"{_name(algo)} sweep on {getattr(config, 'env', '?')}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "sweep.png.tmp"), dpi=100, format="png")
    plt.close(fig)
    os.replace(os.path.join(out, "sweep.png.tmp"), os.path.join(out, "sweep.png"))


def _all_finite(tree) -> jax.Array:
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.ones((), bool)


def guarded(init, step):
    """One run's ``init`` and ``step`` with a divergence guard: ``(init', scan_steps')``.

    The carry gains a ``healthy`` flag. An iteration whose new state (parameters, optimiser
    states, buffers) or metrics hold a non-finite number is not kept: the run stops there, its
    state stays the last finite one (so nothing learned is lost, and a checkpoint holds it), its
    float metrics from then on are NaN, and the metric ``nonfinite`` marks the iteration where
    it happened and every one after. Other runs of the batch go on. While every number is
    finite the guard changes nothing (the chunked run stays bit-identical to ``make_train``).
    """
    def guarded_init(*args):
        return init(*args), jnp.ones((), bool)

    def guarded_step(carry):
        state, healthy = carry
        new, metrics = step(state)
        ok = healthy & _all_finite(new) & _all_finite(metrics)
        state = jax.tree.map(lambda a, b: jax.lax.select(ok, a, b), new, state)
        metrics = {k: (jnp.where(ok, v, jnp.nan) if jnp.issubdtype(v.dtype, jnp.inexact)
                       else v) for k, v in metrics.items()}
        return (state, ok), {**metrics, "nonfinite": ~ok}

    def scan_steps(carry, length):
        return jax.lax.scan(lambda c, _: guarded_step(c), carry, None, length=length)

    return guarded_init, scan_steps


def report_nonfinite(metrics: dict[str, np.ndarray], labels: Sequence[str]) -> list[str]:
    """One line on stderr per run stopped by the divergence guard (``metrics["nonfinite"]``
    ``[runs, iterations]``): where it stopped and what that means. Returns the lines."""
    flags = metrics.get("nonfinite")
    lines = []
    if flags is None:
        return lines
    for label, row in zip(labels, flags, strict=True):
        if row.any():
            first = int(np.argmax(row))
            lines.append(f"warning: {label} stopped at iteration {first + 1}: non-finite "
                         f"parameters, buffers or metrics; its state is the last finite one "
                         f"(iteration {first}), its later metrics are NaN and left out of the "
                         "table's statistics")
    for line in lines:
        print(line, file=sys.stderr)
    return lines


def load_checkpointed(directory: str | os.PathLike):
    """A run's or sweep's checkpoint in ``directory``, rebuilt from what it stores: ``(algo,
    configs, states, meta)`` with one config and one state (no seed axis) per run, in the
    driver's order (point-major for sweeps). ``CheckpointError`` if missing or corrupt."""
    from purembrl import algos
    from purembrl.config import from_dict

    path = os.path.join(os.fspath(directory), CHECKPOINT)
    meta = ckpt.read_meta(path)
    algo = algos.get(meta["algorithm"])
    num_seeds, seed = meta["num_seeds"], meta["seed"]
    # the templates come from the same guarded init the driver ran, so they cannot drift
    if "sweep" in meta:
        configs = [from_dict(algo.Config, c) for c in meta["sweep"]]
        init = guarded(*_sweep_member(algo))[0]
        template = jax.eval_shape(jax.vmap(init), *_sweep_inputs(configs, seed, num_seeds))
        ((_, states), _), _, _ = ckpt.load(path, template)
        configs = [c for c in configs for _ in range(num_seeds)]
    else:
        config = from_dict(algo.Config, meta["config"])
        loop = algo.make_loop(config)
        init = guarded(loop.init, loop.step)[0]
        template = jax.eval_shape(jax.vmap(init), seed_keys(seed, num_seeds))
        (states, _), _, _ = ckpt.load(path, template)
        configs = [config] * num_seeds
    per_run = [jax.tree.map(lambda x, i=i: x[i], states) for i in range(len(configs))]
    return algo, configs, per_run, meta


def load_policy(directory: str | os.PathLike, index: int = 0):
    """``(policy, config)`` of run ``index`` of the checkpoint in ``directory``: the trained
    agent as a pure function ``policy(key, obs [B, ...]) -> action [B, ...]``."""
    algo, configs, states, _ = load_checkpointed(directory)
    if not 0 <= index < len(states):
        raise ValueError(f"index={index} is invalid: the checkpoint holds {len(states)} runs")
    return algo.policy(states[index], configs[index]), configs[index]


def evaluate_checkpoint(directory: str | os.PathLike, episodes: int = 10,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Every run of a checkpoint, evaluated afresh with its greedy policy on ``episodes``
    episodes: ``(mean return [runs], mean length [runs], meta)``."""
    from purembrl import envs, interact

    if episodes < 1:
        raise ValueError(f"episodes={episodes} is invalid: allowed an integer >= 1")
    algo, configs, states, meta = load_checkpointed(directory)
    compiled = {}  # one evaluation program per distinct config; the state is an argument

    def evaluation(config):
        env, env_params = envs.make(config.env)
        max_steps = interact.spec(env, env_params).max_steps
        return jax.jit(lambda state, key: interact.evaluate(
            env, env_params, algo.policy(state, config), key, episodes, max_steps))

    returns, lengths = [], []
    for i, (config, state) in enumerate(zip(configs, states, strict=True)):
        name = json.dumps(_plain(as_dict(config)), sort_keys=True)
        if name not in compiled:
            compiled[name] = evaluation(config)
        ret, length = compiled[name](state, jax.random.fold_in(jax.random.key(seed), i))
        returns.append(float(ret))
        lengths.append(float(length))
    return np.array(returns), np.array(lengths), meta


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


def _drive(label: str, init, scan_steps, inputs: tuple, num_iterations: int,
           identity: dict[str, Any], curve: tuple[str, str], *, out, num_chunks: int,
           progress: bool, checkpoint: bool, resume: bool, stop_after_chunks: int | None):
    """The chunked run shared by ``run`` and ``sweep``: ``init(*inputs)`` (batched), then
    ``scan_steps(carry, length)`` chunk by chunk, with progress, checkpoints and resume.
    Returns ``(carry, metrics, seconds, iterations done)``."""
    if stop_after_chunks is not None and stop_after_chunks < 1:
        raise ValueError(f"stop_after_chunks={stop_after_chunks} is invalid: allowed >= 1")
    if resume and out is None:
        raise ValueError("resume=True needs out, the directory holding the checkpoint")
    main = is_main_process()
    progress = progress and main
    if out is not None and main:
        prepare_out(out)
    ckpt_path = os.path.join(os.fspath(out), CHECKPOINT) if out is not None else None
    chunk = chunk_length(num_iterations, num_chunks)
    inputs = shard_batch(inputs)
    if jax.process_count() > 1:
        batch = jax.tree.leaves(inputs)[0]
        where = ("sharded over all of them" if not batch.is_fully_addressable
                 else "the whole batch on each process")
        print(f"[process {jax.process_index()}/{jax.process_count()}] "
              f"{jax.local_device_count()} of {jax.device_count()} devices; {batch.shape[0]} "
              f"runs {where}", file=sys.stderr, flush=True)
    init = jax.jit(init)
    donate = () if jax.default_backend() == "cpu" else (0,)  # the CPU cannot reuse donations
    run_chunk = jax.jit(scan_steps, static_argnums=1, donate_argnums=donate)

    start = time.perf_counter()
    pieces: list[dict[str, np.ndarray]] = []
    if resume:
        carry, metrics_so_far, meta = ckpt.load(
            ckpt_path, jax.eval_shape(init, *inputs),
            check_meta=lambda meta: check_same_run(ckpt_path, meta, identity))
        carry = shard_batch(carry)
        done = meta["done"]
        if done:
            pieces.append(metrics_so_far)
    else:
        carry, done = init(*inputs), 0
    kill_after = int(os.environ.get("PUREMBRL_KILL_AFTER_CHUNK", "0"))
    chunks_run = 0
    while done < num_iterations and (stop_after_chunks is None
                                     or chunks_run < stop_after_chunks):
        length = min(chunk, num_iterations - done)
        carry, metrics = run_chunk(carry, length)
        # host copy: also waits for the chunk
        pieces.append(jax.tree.map(np.asarray, to_host(metrics)))
        done += length
        chunks_run += 1
        if ckpt_path is not None and checkpoint:
            so_far = _concat(pieces)
            pieces = [so_far]
            whole = to_host(carry)  # every process takes part in gathering it
            if main:
                ckpt.save(ckpt_path, whole, so_far, {**identity, "done": done,
                                                     "num_iterations": num_iterations})
            if chunks_run == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        if progress:
            _progress(label, done, num_iterations, metrics, curve, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if progress:
        print(file=sys.stderr)
    if not pieces:
        raise ValueError("the run has no iterations to report")
    return to_host(carry), _concat(pieces), seconds, done


def run_identity(algo: ModuleType, config: Any, seed: int, num_seeds: int) -> dict[str, Any]:
    """What makes two runs the same run (stored in checkpoints, compared on resume)."""
    return {"algorithm": _name(algo), "config": _plain(as_dict(config)), "seed": seed,
            "num_seeds": num_seeds}


def _concat(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(pieces) == 1:
        return pieces[0]
    return {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}


def _plain(value: Any) -> Any:
    """JSON's view of a value (tuples become lists), so saved and new configs compare."""
    return json.loads(json.dumps(value))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists of dicts as {dotted name: leaf}."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


IDENTITY = ("algorithm", "config", "sweep", "seed", "num_seeds")


def check_same_run(path: str, meta: dict[str, Any], identity: dict[str, Any]) -> None:
    """``CheckpointError`` naming each field where the checkpoint's run differs from this one."""
    ours = _flat({k: v for k, v in identity.items() if k in IDENTITY})
    theirs = _flat({k: v for k, v in meta.items() if k in IDENTITY})
    differ = [f"{name}: {theirs.get(name, '(absent)')!r} in the checkpoint, "
              f"{ours.get(name, '(absent)')!r} now"
              for name in sorted(set(ours) | set(theirs)) if ours.get(name) != theirs.get(name)]
    if differ:
        raise ckpt.CheckpointError(f"checkpoint {path} is from another run; differing: "
                                   + "; ".join(differ))


def _name(algo: ModuleType) -> str:
    return algo.__name__.rsplit(".", 1)[-1]


def _progress(label, done, total, last, curve, elapsed):
    parts = [label, f"iteration {done}/{total}"]
    if "env_steps" in last:
        parts.append(f"env steps {np.median(last['env_steps'][:, -1]):,.0f}")
    for name in dict.fromkeys(("eval_return", curve[1])):
        if name in last:
            parts.append(f"median {name} {quantiles(last[name][:, -1])[0]:.4g}")
    if "nonfinite" in last and last["nonfinite"][:, -1].any():
        parts.append(f"{int(last['nonfinite'][:, -1].sum())} stopped (non-finite)")
    parts.append(f"{elapsed:.1f}s")
    end = "\r" if sys.stderr.isatty() else "\n"
    print(" | ".join(parts), end=end, file=sys.stderr, flush=True)


def quantiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 25th and 75th percentile over the seed axis (axis 0), leaving out NaN (runs the
    divergence guard stopped); NaN where no run is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        q25, median, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
    return median, q25, q75


def _columns(metrics: dict[str, np.ndarray], curve: tuple[str, str]) -> list[str]:
    names = [n for n in (curve[1], "eval_return") if n in metrics]
    return list(dict.fromkeys(names))


def summary_table(metrics: dict[str, np.ndarray], curve: tuple[str, str],
                  max_rows: int = 25) -> str:
    """Median [IQR] over seeds at each evaluation (at most ``max_rows`` rows, last included)."""
    num_iterations = next(iter(metrics.values())).shape[1]
    rows = sorted(set(np.linspace(0, num_iterations - 1, min(max_rows, num_iterations))
                      .round().astype(int).tolist()))
    names = _columns(metrics, curve)
    header = ["iteration"] + (["env_steps"] if "env_steps" in metrics else [])
    header += [f"{n} median [IQR]" for n in names]
    lines = []
    for i in rows:
        line = [str(i + 1)]
        if "env_steps" in metrics:
            line.append(f"{np.median(metrics['env_steps'][:, i]):,.0f}")
        for n in names:
            med, q25, q75 = quantiles(metrics[n][:, i])
            line.append(f"{med:.4g} [{q25:.4g}, {q75:.4g}]")
        lines.append(line)
    widths = [max(len(r[j]) for r in [header, *lines]) for j in range(len(header))]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
    seeds = next(iter(metrics.values())).shape[0]
    return "\n".join([f"median and interquartile range over {seeds} seeds", fmt(header),
                      *map(fmt, lines)])


def prepare_out(out: str | os.PathLike) -> None:
    """Create the output directory; ``ValueError`` if it is a file or cannot be written."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out}: exists and is not a directory")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create directory ({err.strerror})") from None
    # A probe file rather than os.access: root passes os.access on read-only mounts.
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".purembrl-probe-"):
            pass
    except OSError as err:
        raise ValueError(f"--out {out}: directory is not writable ({err.strerror})") from None


def _atomic_write(path: str, text: str) -> None:
    """Write then rename: a crash leaves the old file or the new one, never half of one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_results(out: str | os.PathLike, algo: ModuleType, config: Any, seed: int,
                  result: RunResult) -> None:
    """``metrics.json``, ``curve.csv`` and ``curve.png`` in ``out``.

    ``metrics.json`` maps each metric name to its nested list ``[num_seeds, num_iterations,
    ...]``; the key ``"_run"`` holds the algorithm, config, seed and wall-clock seconds.
    """
    out = os.fspath(out)
    metrics = result.metrics
    payload = {k: v.tolist() for k, v in metrics.items()}
    payload["_run"] = {
        "algorithm": _name(algo),
        "config": as_dict(config),
        "seed": seed,
        "num_seeds": next(iter(metrics.values())).shape[0],
        "seconds": result.seconds,
        "curve": list(result.curve),
        "complete": result.complete,
    }
    _atomic_write(os.path.join(out, "metrics.json"), json.dumps(payload))

    x_name, y_name = result.curve
    num_iterations = next(iter(metrics.values())).shape[1]
    names = _columns(metrics, result.curve)
    header = ["iteration"] + (["env_steps_median"] if "env_steps" in metrics else [])
    for n in names:
        header += [f"{n}_median", f"{n}_q25", f"{n}_q75"]
    stats = {n: quantiles(metrics[n]) for n in names}
    rows = [",".join(header)]
    for i in range(num_iterations):
        row = [str(i + 1)]
        if "env_steps" in metrics:
            row.append(f"{np.median(metrics['env_steps'][:, i]):g}")
        for n in names:
            row += [f"{s[i]:.6g}" for s in stats[n]]
        rows.append(",".join(row))
    _atomic_write(os.path.join(out, "curve.csv"), "\n".join(rows) + "\n")
    plot_curve(os.path.join(out, "curve.png"), metrics, result.curve,
               title=f"{_name(algo)} on {getattr(config, 'env', '?')}")


def plot_curve(path: str, metrics: dict[str, np.ndarray], curve: tuple[str, str],
               title: str = "", labels: Sequence[str] | None = None) -> None:
    """Median over seeds with the interquartile range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_name, y_name = curve
    num_iterations = metrics[y_name].shape[1]
    if x_name in metrics:
        x = np.median(metrics[x_name], axis=0)
    else:
        x = np.arange(1, num_iterations + 1)
    med, q25, q75 = quantiles(metrics[y_name])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, med, label=f"median of {metrics[y_name].shape[0]} seeds")
    ax.fill_between(x, q25, q75, alpha=0.3, label="interquartile range")
    ax.set_xlabel(x_name.replace("_", " "))
    ax.set_ylabel(y_name.replace("_", " "))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{path}.tmp", dpi=100, format="png")  # then an atomic rename
    plt.close(fig)
    os.replace(f"{path}.tmp", path)
