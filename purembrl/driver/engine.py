"""The chunked engine under ``run`` and ``sweep``: a batch of training runs (seeds, or sweep
points x seeds) under one ``jit(vmap(...))``, stepped in chunks so progress moves and
checkpoints are written between chunks, with a divergence guard and exact resume.

Chunking does not change results: a chunk is the same ``TrainLoop.step`` scanned fewer times
(from its first iteration's index), so a run's metrics are bit-identical whatever its number of
chunks. They equal ``jax.jit(jax.vmap(make_train(config)))(keys)``'s bit for bit for the
tabular algorithms; a deep algorithm's can differ there in the last bits on the CPU, which
grow over training: inside ``make_train`` under ``vmap``, state leaves that do not depend on
the key (step counters, optimiser counts) stay unbatched, while the driver's stacked state
batches every leaf, and XLA compiles the two differently. Checkpoints hold
the whole carry of every run and the metrics so far (``purembrl.checkpoint``: one file, atomic
rename, SHA-256 checked); a resumed run's final metrics are bit-identical to an uninterrupted
run's, and a checkpoint of another run is refused naming what differs. For fault-injection
tests, the environment variable ``PUREMBRL_KILL_AFTER_CHUNK=k`` makes the process SIGKILL
itself right after its k-th checkpoint of this call.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from purembrl import checkpoint as ckpt
from purembrl import interrupts
from purembrl.driver import report, rundir
from purembrl.driver.devices import is_main_process, shard_batch, to_host
from purembrl.loop import EpisodeLoop, episode_record, pool_episodes

CHECKPOINT = "checkpoint.npz"
DEFAULT_CHUNKS = 10  # Options.num_chunks=None where the whole run cannot go in one piece
# slots of ``pooled`` per part of a group of lanes: on a 2-core CPU, the pooled runs of tabular
# Dyna-Q's Figure 8.2 sweep at 1000 runs per n (two parts of 500 per n) took 5.3-5.5 s with
# 128 slots and 5.7 s with 64; one n = 50 group alone 4.3 s (32: 7.7 s, 64: 5.4 s, 96: 5.0 s,
# 192: 7.4 s) (benchmarks/RESULTS.md, issue 24)
POOL_WIDTH = 128


def batched(fn, in_axes=0):
    """``jax.vmap(fn, in_axes)``, except that a batch of one runs ``fn`` on the single member
    and adds the batch axis back: the same result, faster. (XLA compiles the size-1 batch
    dimension of a vmapped matmul to slower kernels; ``benchmarks/mbpo_speed.py`` measures it,
    RESULTS.md has the numbers.)"""
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


SEED_RANGE = (-2**63, 2**63 - 1)  # what ``jax.random.key`` takes (a C long)


def check_seed(seed: Any, name: str = "seed") -> None:
    """``ValueError`` unless ``seed`` is an integer ``jax.random.key`` accepts."""
    low, high = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not (
            low <= seed <= high):
        raise ValueError(f"{name}={seed!r} is invalid: allowed an integer in [-2**63, 2**63 - 1]")


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """One key per seed, all derived from the integer ``seed``."""
    check_seed(seed)
    return jax.random.split(jax.random.key(seed), num_seeds)


def curve_of(algo: ModuleType, config: Any) -> tuple[str, str]:
    """The (x, y) metric names of ``algo``'s learning curve: its ``curve(config)`` if it has
    one, else ``("env_steps", "eval_return")``."""
    return algo.curve(config) if hasattr(algo, "curve") else ("env_steps", "eval_return")


def chunk_length(num_iterations: int, num_chunks: int) -> int:
    """A divisor of ``num_iterations`` near ``num_iterations / num_chunks``: equal chunks share
    one compiled function. The nearest one up to 10^12 iterations; beyond, the nearest among
    those with a co-divisor up to 10^6 (the search stays instant for any budget)."""
    target = num_iterations / max(1, num_chunks)
    bound = min(math.isqrt(num_iterations), 10**6)  # every divisor up to 10^12 iterations
    small = [d for d in range(1, bound + 1) if num_iterations % d == 0]
    divisors = small + [num_iterations // d for d in reversed(small)
                        if d * d != num_iterations]  # ascending, found in sqrt(n) steps
    return min(divisors, key=lambda d: abs(math.log(d / target)))


class TooLarge(ValueError):
    """A run refused before it allocates anything: its estimated memory exceeds what the
    machine has (or ``PUREMBRL_MEMORY_LIMIT`` is malformed)."""


def available_memory() -> int | None:
    """Bytes the run may use: the devices' memory limit summed over this process's devices, or
    on the CPU the host's available memory (``MemAvailable``); None when unknown. The
    environment variable ``PUREMBRL_MEMORY_LIMIT`` (bytes) lowers it, for a shared machine."""
    found = None
    devices = jax.local_devices()
    if devices[0].platform != "cpu":
        limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices]
        found = sum(limits) if all(limits) else None
    else:
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        found = int(line.split()[1]) * 1024
        except OSError:
            pass
    limit = os.environ.get("PUREMBRL_MEMORY_LIMIT")
    if limit:
        try:
            limit = int(float(limit))
        except ValueError:
            raise TooLarge(f"PUREMBRL_MEMORY_LIMIT={limit!r} is invalid: allowed a number of "
                           "bytes") from None
        found = limit if found is None else min(found, limit)
    return found


def nbytes(tree) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) in ``tree``; keys count their data."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        dtype = leaf.dtype
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            size = 2 * 4  # threefry key data: two uint32 words
        else:
            size = np.dtype(dtype).itemsize
        total += math.prod(leaf.shape) * size
    return total


def human(num_bytes: float) -> str:
    """``1536`` -> ``"1.5 KB"``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num_bytes < 1024 or unit == "TB":
            return f"{num_bytes:.3g} {unit}" if unit != "B" else f"{int(num_bytes)} B"
        num_bytes /= 1024
    raise AssertionError


def memory_estimate(state, metrics_per_chunk, chunk: int, num_iterations: int,
                    num_runs: int) -> tuple[int, str]:
    """``(bytes, description)``: what a run of ``num_runs`` runs holds at its peak, from the
    shapes of its carry and of one chunk's metrics (``jax.eval_shape``, nothing allocated). The
    carry is counted twice (a chunk's input and output: the CPU cannot donate buffers) and the
    metrics of every iteration once (they stay on the host for the results), and the
    divergence guard's joined copy of the state's smaller leaves (``guard_bytes``)."""
    state_bytes = nbytes(state)
    metric_bytes = nbytes(metrics_per_chunk) * num_iterations // max(chunk, 1)
    check_bytes = guard_bytes(state, num_runs)
    total = 2 * state_bytes + metric_bytes + check_bytes
    runs = f"{num_runs} run" + ("s" if num_runs != 1 else "")
    return total, (f"about {human(total)} (state {human(state_bytes / num_runs)} per run x "
                   f"{runs}, held twice during a chunk; metrics {human(metric_bytes)}; "
                   f"divergence check {human(check_bytes)})")


def check_memory(total: int, description: str, available: int | None) -> None:
    """``TooLarge`` naming the estimate when ``total`` exceeds ``available``."""
    if available is not None and total > available:
        raise TooLarge(f"the run needs {description}, but {human(available)} is available; "
                       "use fewer seeds, a smaller buffer_size or a shorter budget")


GUARD_JOIN_LIMIT = 1 << 20  # leaves up to this many elements are checked joined (_all_finite)


def _all_finite(tree) -> jax.Array:
    """Whether every float in ``tree`` is finite, as one boolean.

    The float leaves of up to ``GUARD_JOIN_LIMIT`` elements are joined into one vector per
    dtype and checked at once; larger leaves (big replay buffers) on their own, so that the
    check never copies them. A check per leaf compiles to about three kernels per leaf, and
    the guard runs on every leaf of a training state (125 in MBPO): joined, MBPO's step
    program has 217 fewer kernels (benchmarks/RESULTS.md, "Fewer kernels, the same numbers")."""
    joined, checks = {}, []
    for x in jax.tree.leaves(tree):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            continue
        if x.size > GUARD_JOIN_LIMIT:
            checks.append(jnp.all(jnp.isfinite(x)))
        else:
            joined.setdefault(x.dtype, []).append(jnp.ravel(x))
    checks += [jnp.all(jnp.isfinite(jnp.concatenate(xs))) for xs in joined.values()]
    return jnp.all(jnp.stack(checks)) if checks else jnp.ones((), bool)


def guard_bytes(state, num_runs: int = 1) -> int:
    """The bytes ``_all_finite`` holds while it checks ``state`` (``num_runs`` runs along the
    leading axis, each checked on its own): the joined float leaves and their flags (one byte
    per element)."""
    return sum(x.size * (x.dtype.itemsize + 1) for x in jax.tree.leaves(state)
               if jnp.issubdtype(x.dtype, jnp.inexact)
               and x.size // max(num_runs, 1) <= GUARD_JOIN_LIMIT)


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

    def guarded_step(carry, iteration):
        state, healthy = carry
        new, metrics = step(state, iteration)
        ok = healthy & _all_finite((new, metrics))
        # a cond, not a select per leaf: one run's program copies the kept state instead of
        # compiling a kernel per leaf (under vmap JAX makes it the select per leaf again)
        state = jax.lax.cond(ok, lambda new, old: new, lambda new, old: old, new, state)
        metrics = {k: (jnp.where(ok, v, jnp.nan) if jnp.issubdtype(v.dtype, jnp.inexact)
                       else v) for k, v in metrics.items()}
        return (state, ok), {**metrics, "nonfinite": ~ok}

    def scan_steps(carry, start, length):
        """``length`` iterations from iteration ``start`` (traced: chunks share a compile)."""
        return jax.lax.scan(guarded_step, carry, start + jnp.arange(length, dtype=jnp.int32))

    return guarded_init, scan_steps


@dataclass(frozen=True)
class Options:
    """How ``run`` and ``sweep`` drive their batch (their keyword options, written down once).

    Attributes:
      out: directory for results and the checkpoint (None: nothing is written).
      num_chunks: about how many chunks the run is cut into (progress and checkpoints move
        between chunks; results do not depend on it). ``None`` (the default): the whole run
        in one piece where the batch offers that (``Batch.whole``: runs of episodes that do
        not wait for each other, ``purembrl.loop.pool_episodes``), else 10 chunks.
      progress: print a progress line after every chunk. table: print the final table.
      checkpoint: save ``out/checkpoint.npz`` after every chunk (needs ``out``).
      resume: continue from that checkpoint (``CheckpointError`` if it is missing, corrupt or
        from another run).
      extend: with ``resume``, the checkpoint may hold this run with a smaller budget (a
        finished run trained longer); the config's ``check_extension(stored config)`` must
        accept it (continuing then equals the longer run from the start), else
        ``ValueError``. ``run`` only.
      stop_after_chunks: return after this many chunks of this call (the result's
        ``complete`` is then False unless the run ended).
      progress_fn: called on the main process after every chunk (and its checkpoint) as
        ``progress_fn(iterations_done, metrics)``, the metrics so far as NumPy arrays
        ``[runs, iterations_done, ...]`` (brax's ``progress_fn`` convention): plug any logger
        in. The run itself uses it to rewrite ``metrics.json`` and ``curve.csv`` after each
        chunk, so a long run can be watched and a killed one keeps its curve.
    """

    out: str | os.PathLike | None = None
    num_chunks: int | None = None
    progress: bool = True
    table: bool = True
    checkpoint: bool = True
    resume: bool = False
    extend: bool = False
    stop_after_chunks: int | None = None
    progress_fn: Any = None

    def __post_init__(self):
        if self.num_chunks is not None and (not isinstance(self.num_chunks, int)
                                            or self.num_chunks < 1):
            raise ValueError(f"num_chunks={self.num_chunks!r} is invalid: allowed an integer "
                             ">= 1, or None")
        if self.stop_after_chunks is not None and self.stop_after_chunks < 1:
            raise ValueError(f"stop_after_chunks={self.stop_after_chunks} is invalid: "
                             "allowed >= 1")
        if self.resume and self.out is None:
            raise ValueError("resume=True needs out, the directory holding the checkpoint")
        if self.extend and not self.resume:
            raise ValueError("extend=True needs resume=True: it continues a checkpoint")
        if self.progress_fn is not None and not callable(self.progress_fn):
            raise ValueError(f"progress_fn={self.progress_fn!r} is invalid: allowed a function "
                             "(iterations_done, metrics) -> None")

    @property
    def checkpoint_path(self) -> str | None:
        if self.out is None:
            return None
        return os.path.join(os.fspath(self.out), CHECKPOINT)


@dataclass(frozen=True)
class Batch:
    """A batch of runs for ``drive``: ``init(*inputs)`` and ``scan_steps(carry, start,
    length)``, both already batched; ``identity`` names the runs in checkpoints; ``label``
    prefixes progress."""

    label: str
    init: Any
    scan_steps: Any
    inputs: tuple
    num_iterations: int
    identity: dict[str, Any]
    curve: tuple[str, str]
    resumes: dict[str, Any] | None = None  # the identity a checkpoint may hold (extend)
    # ``whole(carry, on_part) -> (carry, metrics)``: the whole run at once, the numbers of the
    # chunks wherever its ``nonfinite`` metric is all False (``pooled``), calling ``on_part(runs
    # done, runs)`` (None: nothing) as parts of it end, with ``whole.memory(carry shapes) ->
    # (bytes, description)`` if it has one; None: chunks only
    whole: Any = None


def _describe_placement(inputs) -> None:
    """On several hosts, one line per process saying where its runs are."""
    if jax.process_count() == 1:
        return
    batch = jax.tree.leaves(inputs)[0]
    where = ("sharded over all of them" if not batch.is_fully_addressable
             else "the whole batch on each process")
    print(f"[process {jax.process_index()}/{jax.process_count()}] "
          f"{jax.local_device_count()} of {jax.device_count()} devices; {batch.shape[0]} "
          f"runs {where}", file=sys.stderr, flush=True)


def _start(batch: Batch, options: Options, init, inputs):
    """``(carry, metrics pieces so far, iterations done)``: fresh, or from the checkpoint."""
    if not options.resume:
        return init(*inputs), [], 0
    path = options.checkpoint_path
    carry, metrics_so_far, meta = ckpt.load(
        path, jax.eval_shape(init, *inputs),
        check_meta=lambda meta: check_same_run(path, meta, batch.resumes or batch.identity))
    done = meta["done"]
    return shard_batch(carry), ([metrics_so_far] if done else []), done


def _save(batch: Batch, options: Options, carry, so_far, done: int) -> None:
    """The checkpoint after a chunk (process 0 writes; every process helps gather). On several
    processes all wait until it is on disk: the coordination service aborts process 0 when
    another dies, so without the barrier a process killed right after a chunk could take the
    half-written checkpoint with it (the run would resume from the chunk before)."""
    whole = to_host(carry)
    if is_main_process():
        with interrupts.saving():
            ckpt.save(options.checkpoint_path, whole, so_far,
                      {**batch.identity, "done": done, "num_iterations": batch.num_iterations})
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"purembrl checkpoint {done}")


@contextlib.contextmanager
def writing(options: Options):
    """Hold ``options.out``'s lock (``rundir.lock``, on the main process) for the block: the
    directory is created first, and a second run writing there is refused with a
    ``ValueError`` naming the holder's pid."""
    out = options.out if options.out is not None and is_main_process() else None
    if out is not None:
        rundir.prepare_out(out)
    with rundir.lock(out):
        yield


def drive(batch: Batch, options: Options):
    """The chunked run shared by ``run`` and ``sweep``: ``batch.init`` then ``scan_steps``
    chunk by chunk, with progress, checkpoints and resume. Returns ``(carry, metrics, seconds,
    iterations done)``."""
    progress = options.progress and is_main_process()  # ``writing`` made options.out
    whole = (batch.whole is not None and options.num_chunks is None and not options.resume
             and options.stop_after_chunks is None and jax.device_count() == 1)
    chunk = chunk_length(batch.num_iterations, options.num_chunks or DEFAULT_CHUNKS)
    inputs = shard_batch(batch.inputs)
    _describe_placement(inputs)
    init = jax.jit(batch.init)
    donate = () if jax.default_backend() == "cpu" else (0,)  # the CPU cannot reuse donations
    run_chunk = jax.jit(batch.scan_steps, static_argnums=2, donate_argnums=donate)

    state_shape = init.eval_shape(*inputs)  # traced once: the calls below reuse the trace
    if whole and hasattr(batch.whole, "memory"):  # the chunks' program is then not traced
        total, description = batch.whole.memory(state_shape)
    else:
        chunk_metrics = run_chunk.eval_shape(state_shape, jnp.int32(0), chunk)[1]
        num_runs = jax.tree.leaves(batch.inputs)[0].shape[0]
        total, description = memory_estimate(state_shape, chunk_metrics, chunk,
                                             batch.num_iterations, num_runs)
    check_memory(total, description, available_memory())
    if progress:
        print(config_text(batch.label, batch.identity), file=sys.stderr)
        print(f"{batch.label}: memory {description}", file=sys.stderr, flush=True)
        if batch.num_iterations > 0:
            what = (f"the whole run ({batch.num_iterations} iterations, runs not waiting for "
                    "each other)" if whole else
                    f"the first chunk ({chunk} of {batch.num_iterations} iterations)")
            print(f"{batch.label}: compiling, then {what}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    interrupts.set_out(options.out)
    carry, pieces, done = _start(batch, options, init, inputs)
    display = report.ProgressDisplay(batch.label, batch.num_iterations) if progress else None
    try:
        if whole:
            carry, pieces, done = _whole(batch, options, carry, display, start)
        carry, pieces, done = _chunks(batch, options, run_chunk, chunk, carry, pieces, done,
                                      display, start)
    finally:
        interrupts.set_graceful(False)
        if display is not None:
            display.close()
    seconds = time.perf_counter() - start
    if not pieces:
        raise ValueError("the run has no iterations to report")
    return to_host(carry), concat(pieces), seconds, done


def _whole(batch: Batch, options: Options, carry, display, start: float):
    """``drive``'s run in one piece (``Batch.whole``), then the checkpoint, the progress and
    ``progress_fn`` as after a last chunk. If a run's numbers went non-finite, nothing is
    kept and the chunks redo the batch from the start under the per-iteration guard (which
    decides where each diverged run stops); ``(carry, [], 0)`` then."""
    def on_part(runs_done: int, runs: int):
        print(f"{batch.label}: {runs_done:,} of {runs:,} runs done | "
              f"{time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)

    new, metrics = batch.whole(carry, on_part=None if display is None else on_part)
    metrics = jax.tree.map(np.asarray, to_host(metrics))
    if bool(metrics["nonfinite"].any()):
        if display is not None:
            print(f"{batch.label}: a run went non-finite; redoing the batch in chunks with the "
                  "divergence guard", file=sys.stderr, flush=True)
        return carry, [], 0
    done = batch.num_iterations
    if options.checkpoint_path is not None and options.checkpoint:
        _save(batch, options, new, metrics, done)
    interrupts.set_graceful(True)
    if display is not None:
        display.update(done, metrics, batch.curve, time.perf_counter() - start, eta=0.0,
                       first=True, steps_per_second=None)
    if options.progress_fn is not None and is_main_process():
        options.progress_fn(done, metrics)
    return new, [metrics], done


def episode_loop(algo: ModuleType, config: Any):
    """``algo.make_episode_loop(config)`` (an ``EpisodeLoop``: runs whose iterations are
    episodes), or None where the algorithm or this config has none."""
    make = getattr(algo, "make_episode_loop", None)
    return None if make is None else make(config)


def pooled(loop, groups: np.ndarray | None = None, width: int = POOL_WIDTH,
           workers: int | None = None) -> Pooled:
    """``Batch.whole`` for a batch of guarded runs of one ``EpisodeLoop`` (carry ``(state,
    healthy)``, lanes leading): ``purembrl.loop.pool_episodes`` on ``width`` slots per group
    of lanes (``groups``: ``sweeps.lane_groups``'s order; None: one group). ``loop`` may be a
    function ``states -> EpisodeLoop`` of one group's states (a sweep fixes the settings its
    group shares, so that a loop's trip count is not batched:
    ``sweeps.sweep_member_episodes``).

    The runs use every core: each group is cut in ``workers`` equal parts (fewer where its
    lanes do not divide, or a part would hold one lane), each part one call of one compiled
    program, the calls made from ``workers`` threads. XLA's CPU client runs a program of this
    size on one core and runs calls from different threads side by side, and every thread
    gets an equal share of every group (the groups' costs differ: Figure 8.2's n = 50 runs
    cost 3x n = 5's). ``workers`` None: the CPU cores this process may use on the CPU
    backend, 1 elsewhere. A run's numbers do not depend on the part it is played in
    (``tests/test_pool.py``).

    The divergence guard, in one piece: an iteration is marked ``nonfinite`` (and every one
    after it) where a float in the carry at its episode's end, or in its metrics, or in the
    run's final carry, is not finite. ``drive`` keeps the result only if no run was marked;
    otherwise the chunks redo the batch under the per-iteration guard. While every number is
    finite the result is the chunks' bit for bit."""
    return Pooled(loop, groups, width, workers)


class Pooled:
    """``pooled``'s ``whole(carry) -> (carry, metrics)``, and ``memory``, its estimate."""

    def __init__(self, loop, groups, width: int, workers: int | None):
        self.loop, self.groups, self.width = loop, groups, width
        self.workers = workers or (_cores() if jax.default_backend() == "cpu" else 1)
        self._programs = {}

    def _loop(self, states) -> EpisodeLoop:
        loop = self.loop(states) if callable(self.loop) else self.loop
        return loop._replace(
            end=lambda c, aux, length, ret: (loop.end(c, aux, length, ret), _all_finite(c)),
            report=lambda record: {**loop.report(record[0]), "_finite": record[1]})

    def _play(self, states, healthy):
        lanes = jax.tree.leaves(states)[0].shape[0]
        finals, metrics = pool_episodes(self._loop(states), states, min(self.width, lanes))
        ok = metrics.pop("_finite") & healthy[:, None]
        for value in metrics.values():
            if jnp.issubdtype(value.dtype, jnp.inexact):
                ok &= jnp.isfinite(value).reshape(*value.shape[:2], -1).all(axis=2)
        ok = ok.at[:, -1].set(ok[:, -1] & jax.vmap(_all_finite)(finals))
        return finals, {**metrics, "nonfinite": jnp.cumsum(~ok, axis=1) > 0}

    def _tasks(self, lanes: int) -> np.ndarray:
        """The lanes of each call, ``[calls, lanes per call]``: every group in equal parts,
        one per thread, so that each thread gets an equal share of every group's work; equal
        parts only (one compile), and of two lanes or more (a batch of one lane compiles to
        other instructions, whose floats differ in the last bits from a batch's: measured on
        tabular Dyna-Q's Q-tables)."""
        tasks = np.arange(lanes)[None] if self.groups is None else np.asarray(self.groups)
        parts = self.workers
        while parts > 1 and (tasks.shape[1] % parts or tasks.shape[1] // parts < 2):
            parts -= 1
        return tasks.reshape(len(tasks) * parts, -1)

    def _program(self, carry):
        """The jitted call on flat leaves (a config in the states would be checked, and
        refused, with the abstract values that lowering and ``eval_shape`` put in its
        fields), one per carry structure, so that ``memory``'s trace serves ``__call__``."""
        structure = jax.tree.structure(carry)
        if structure not in self._programs:
            self._programs[structure] = jax.jit(
                lambda *leaves: self._play(*structure.unflatten(leaves)))
        return self._programs[structure]

    def memory(self, carry) -> tuple[int, str]:
        """``memory_estimate``'s ``(bytes, description)`` for the pooled run of ``carry``
        (shapes: ``jax.eval_shape``'s): the carry twice (the runs' inputs and outputs), the
        episode records every call keeps until its reports (``pool_episodes``) and the
        metrics. It traces the program that ``__call__`` then compiles (the trace is kept)."""
        states = carry[0]
        lanes = jax.tree.leaves(states)[0].shape[0]
        rows = self._tasks(lanes)[0]
        part = [jax.ShapeDtypeStruct((len(rows), *x.shape[1:]), x.dtype)
                for x in jax.tree.leaves(carry)]
        metrics = jax.eval_shape(self._program(carry), *part)[1]

        flat = jax.tree.structure(states)
        one_record = jax.eval_shape(lambda *x: episode_record(
            self._loop(s := flat.unflatten(x)), jax.tree.map(lambda v: v[0], s)),
            *part[:flat.num_leaves])
        episodes = jax.tree.leaves(metrics)[0].shape[1]
        state_bytes = nbytes(states)
        record_bytes = nbytes(one_record) * episodes * lanes
        metric_bytes = nbytes(metrics) * lanes // len(rows)
        total = 2 * state_bytes + record_bytes + metric_bytes
        return total, (f"about {human(total)} (state {human(state_bytes / lanes)} per run x "
                       f"{lanes} runs, held twice; episode records {human(record_bytes)}; "
                       f"metrics {human(metric_bytes)})")

    def __call__(self, carry, on_part=None):
        """The whole run of ``carry``; ``on_part(runs done, runs)``, if given, is called on
        this thread each time a part of the runs has finished (the progress a pooled run can
        show: its parts run to their ends inside one program each)."""
        tasks = self._tasks(np.asarray(carry[1]).shape[0])
        leaves = jax.tree.leaves(carry)
        inputs = [[_take(x, t) for x in leaves] for t in tasks]  # split on the host
        program = self._program(carry).lower(*inputs[0]).compile()  # before the threads
        outputs, finished = [None] * len(tasks), 0

        def finish(i, output):
            nonlocal finished
            outputs[i], finished = output, finished + 1
            if on_part is not None:
                on_part(finished * tasks.shape[1], tasks.size)

        if self.workers > 1 and len(tasks) > 1:
            with concurrent.futures.ThreadPoolExecutor(min(self.workers, len(tasks))) as pool:
                futures = {pool.submit(lambda x: jax.block_until_ready(program(*x)), x): i
                           for i, x in enumerate(inputs)}
                for future in concurrent.futures.as_completed(futures):
                    finish(futures[future], future.result())
        else:
            for i, x in enumerate(inputs):
                finish(i, jax.block_until_ready(program(*x)))
        inverse = np.argsort(tasks.reshape(-1))
        finals, metrics = jax.tree.map(lambda *xs: _take(_concatenate(xs), inverse), *outputs)
        return (finals, ~metrics["nonfinite"][:, -1]), metrics


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _take(x, rows: np.ndarray):
    """``x[rows]`` on the host (NumPy: no compile per leaf), typed PRNG keys kept typed."""
    if _is_key(x):
        return jax.random.wrap_key_data(np.asarray(jax.random.key_data(x))[rows],
                                        impl=jax.random.key_impl(x))
    return np.asarray(x)[rows]


def _concatenate(xs):
    if _is_key(xs[0]):
        return jax.random.wrap_key_data(
            np.concatenate([np.asarray(jax.random.key_data(x)) for x in xs]),
            impl=jax.random.key_impl(xs[0]))
    return np.concatenate([np.asarray(x) for x in xs])


def _cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _chunks(batch: Batch, options: Options, run_chunk, chunk: int, carry, pieces: list,
            done: int, display, start: float):
    """``drive``'s loop: chunk after chunk until the end, a signal, ``stop_after_chunks`` or
    every run diverged; after each the checkpoint, the progress and ``progress_fn``."""
    kill_after = int(os.environ.get("PUREMBRL_KILL_AFTER_CHUNK", "0"))
    chunks_run = 0
    last = start
    while (done < batch.num_iterations and interrupts.requested() is None
           and (options.stop_after_chunks is None or chunks_run < options.stop_after_chunks)):
        length = min(chunk, batch.num_iterations - done)
        carry, metrics = run_chunk(carry, jnp.int32(done), length)
        metrics = jax.tree.map(np.asarray, to_host(metrics))  # also waits for the chunk
        before = pieces[-1].get("env_steps") if pieces else None
        pieces.append(metrics)  # NumPy from here: the progress line compiles nothing
        done += length
        chunks_run += 1
        if options.checkpoint_path is not None and options.checkpoint:
            pieces = [concat(pieces)]
            _save(batch, options, carry, pieces[0], done)
            if chunks_run == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        interrupts.set_graceful(True)  # compiled and saved: a signal now waits for a chunk
        now = time.perf_counter()
        if display is not None:
            per_iteration = (now - last) / length  # the first chunk's includes compiling
            display.update(done, metrics, batch.curve, now - start,
                           eta=per_iteration * (batch.num_iterations - done),
                           first=chunks_run == 1,
                           steps_per_second=None if chunks_run == 1 else
                           _steps_per_second(before, metrics.get("env_steps"), now - last))
        last = now
        if options.progress_fn is not None and is_main_process():
            pieces = [concat(pieces)]
            options.progress_fn(done, pieces[0])
        if "nonfinite" in metrics and bool(np.all(metrics["nonfinite"][:, -1])):
            break  # every run has diverged: nothing left to train (``all_diverged`` says so)
    return carry, pieces, done


def _steps_per_second(before: np.ndarray | None, after: np.ndarray | None,
                      seconds: float) -> float | None:
    """Env steps per second of one seed over a chunk: the median over seeds of its
    ``env_steps`` at the chunk's end minus before it (``[runs, iterations]`` arrays, the last
    column counts); ``None`` without them."""
    if before is None or after is None or seconds <= 0:
        return None
    return float(np.median(after[:, -1] - before[:, -1])) / seconds


def config_text(label: str, identity: dict[str, Any]) -> str:
    """The run's resolved config (every field, presets applied, nested fields dotted), wrapped
    at 100 columns, as a run prints it at the start; a sweep's swept fields read ``<swept>``.
    ``metrics.json`` stores the same under ``_run``."""
    import textwrap

    configs = identity.get("sweep") or [identity.get("config", {})]
    rows = [report.flat(c) for c in configs]
    text = ", ".join(f"{k}=<swept>" if any(r.get(k) != v for r in rows) else f"{k}={v}"
                     for k, v in rows[0].items())
    return textwrap.fill(text, width=100, initial_indent=f"{label}: config ",
                         subsequent_indent="  ", break_on_hyphens=False)


def all_diverged(metrics: dict[str, np.ndarray]) -> int | None:
    """The iteration (1-based) by which every run of the batch had stopped on a non-finite
    number (the guard's ``nonfinite`` metric, ``[..., iterations]``), or None while at least
    one run is healthy."""
    flags = metrics.get("nonfinite")
    if flags is None or flags.size == 0:
        return None
    flags = flags.reshape(-1, flags.shape[-1])  # runs (a sweep's points x seeds) x iterations
    if not np.all(flags[:, -1]):
        return None
    return int(np.max(np.argmax(flags, axis=1))) + 1


def concat(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Chunks' metrics ``[runs, iterations, ...]`` joined along the iteration axis."""
    if len(pieces) == 1:
        return pieces[0]
    return {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}


IDENTITY = ("algorithm", "config", "sweep", "seed", "num_seeds")


def stored_as_today(meta: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``meta`` with its stored config (or a sweep's configs) as today's class
    of its algorithm reads them back (``config.from_dict``): a field the checkpoint predates
    gets the value that reproduces the stored run (``ADDED_FIELDS``) or its default. ``meta``
    unchanged where its algorithm or one of its fields is unknown (then compared as stored)."""
    from purembrl import algos
    from purembrl.config import as_dict, from_dict

    try:
        config_cls = algos.get(meta["algorithm"]).Config
        out = dict(meta)
        if "config" in meta:
            out["config"] = report.plain(as_dict(from_dict(config_cls, meta["config"])))
        if "sweep" in meta:
            out["sweep"] = report.plain([as_dict(from_dict(config_cls, c))
                                         for c in meta["sweep"]])
        return out
    except (KeyError, TypeError, ValueError):
        return meta


def check_same_run(path: str, meta: dict[str, Any], identity: dict[str, Any]) -> None:
    """``CheckpointError`` naming each field where the checkpoint's run differs from this one.
    The stored config is compared as today's config class reads it back (``stored_as_today``),
    so a field added since the checkpoint was written differs only if it changes the run."""
    ours = report.flat({k: v for k, v in identity.items() if k in IDENTITY})
    theirs = report.flat({k: v for k, v in stored_as_today(meta).items() if k in IDENTITY})
    differ = [f"{name}: {theirs.get(name, '(absent)')!r} in the checkpoint, "
              f"{ours.get(name, '(absent)')!r} now"
              for name in sorted(set(ours) | set(theirs)) if ours.get(name) != theirs.get(name)]
    if differ:
        raise ckpt.CheckpointError(f"checkpoint {path} is from another run; differing: "
                                   + "; ".join(differ))
