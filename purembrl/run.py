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

import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import jax
import numpy as np

from purembrl import checkpoint as ckpt
from purembrl.config import as_dict

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


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """One key per seed, all derived from the integer ``seed``."""
    return jax.random.split(jax.random.key(seed), num_seeds)


def curve_of(algo: ModuleType, config: Any) -> tuple[str, str]:
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
    if stop_after_chunks is not None and stop_after_chunks < 1:
        raise ValueError(f"stop_after_chunks={stop_after_chunks} is invalid: allowed >= 1")
    if resume and out is None:
        raise ValueError("resume=True needs out, the directory holding the checkpoint")
    if out is not None:
        prepare_out(out)
    ckpt_path = os.path.join(os.fspath(out), CHECKPOINT) if out is not None else None
    loop = algo.make_loop(config)
    keys = seed_keys(seed, num_seeds)
    curve = curve_of(algo, config)
    chunk = chunk_length(loop.num_iterations, num_chunks)
    identity = run_identity(algo, config, seed, num_seeds)

    def scan_steps(carry, length):
        return jax.lax.scan(lambda c, _: loop.step(c), carry, None, length=length)

    init = jax.jit(jax.vmap(loop.init))
    donate = () if jax.default_backend() == "cpu" else (0,)  # the CPU cannot reuse donations
    run_chunk = jax.jit(jax.vmap(scan_steps, in_axes=(0, None)), static_argnums=1,
                        donate_argnums=donate)

    start = time.perf_counter()
    pieces: list[dict[str, np.ndarray]] = []
    if resume:
        carry, metrics_so_far, meta = ckpt.load(
            ckpt_path, jax.eval_shape(init, keys),
            check_meta=lambda meta: check_same_run(ckpt_path, meta, identity))
        done = meta["done"]
        if done:
            pieces.append(metrics_so_far)
    else:
        carry, done = init(keys), 0
    kill_after = int(os.environ.get("PUREMBRL_KILL_AFTER_CHUNK", "0"))
    chunks_run = 0
    while done < loop.num_iterations and (stop_after_chunks is None
                                          or chunks_run < stop_after_chunks):
        length = min(chunk, loop.num_iterations - done)
        carry, metrics = run_chunk(carry, length)
        pieces.append(jax.tree.map(np.asarray, metrics))  # host copy: also waits for the chunk
        done += length
        chunks_run += 1
        if ckpt_path is not None and checkpoint:
            so_far = _concat(pieces)
            pieces = [so_far]
            ckpt.save(ckpt_path, carry, so_far, {**identity, "done": done,
                                                 "num_iterations": loop.num_iterations})
            if chunks_run == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        if progress:
            _progress(algo, num_seeds, done, loop.num_iterations, metrics, curve,
                      time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if progress:
        print(file=sys.stderr)
    if not pieces:
        raise ValueError("the run has no iterations to report")
    metrics = _concat(pieces)
    result = RunResult(state=carry, metrics=metrics, seconds=seconds, curve=curve,
                       complete=done == loop.num_iterations)
    if table:
        print(summary_table(metrics, curve))
    if out is not None:
        write_results(out, algo, config, seed, result)
    return result


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


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_same_run(path: str, meta: dict[str, Any], identity: dict[str, Any]) -> None:
    """``CheckpointError`` naming each field where the checkpoint's run differs from this one."""
    ours = _flat({k: v for k, v in identity.items() if k != "config"})
    ours.update(_flat(identity["config"], "config."))
    theirs = _flat({k: v for k, v in meta.items()
                    if k in ("algorithm", "seed", "num_seeds")})
    theirs.update(_flat(meta.get("config", {}), "config."))
    differ = [f"{name}: {theirs.get(name, '(absent)')!r} in the checkpoint, "
              f"{ours.get(name, '(absent)')!r} now"
              for name in sorted(set(ours) | set(theirs)) if ours.get(name) != theirs.get(name)]
    if differ:
        raise ckpt.CheckpointError(f"checkpoint {path} is from another run; differing: "
                                   + "; ".join(differ))


def _name(algo: ModuleType) -> str:
    return algo.__name__.rsplit(".", 1)[-1]


def _progress(algo, num_seeds, done, total, last, curve, elapsed):
    parts = [f"[{_name(algo)}] seeds {num_seeds}", f"iteration {done}/{total}"]
    if "env_steps" in last:
        parts.append(f"env steps {np.median(last['env_steps'][:, -1]):,.0f}")
    for name in dict.fromkeys(("eval_return", curve[1])):
        if name in last:
            parts.append(f"median {name} {np.median(last[name][:, -1]):.4g}")
    parts.append(f"{elapsed:.1f}s")
    end = "\r" if sys.stderr.isatty() else "\n"
    print(" | ".join(parts), end=end, file=sys.stderr, flush=True)


def quantiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 25th and 75th percentile over the seed axis (axis 0)."""
    q25, median, q75 = np.percentile(values, [25, 50, 75], axis=0)
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
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out {out}: directory is not writable")


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
