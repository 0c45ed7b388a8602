"""``sweep``: a grid of configs x seeds in one compile, the configs' numeric leaves vmapped
like the seeds (rejax's pattern), every point on the same seed keys."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purembrl.config import as_dict, config_choices, field_types
from purembrl.driver import engine, report, training
from purembrl.driver.devices import is_main_process
from purembrl.loop import EpisodeLoop


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
          **options: Any) -> SweepResult:
    """Train every config of ``configs`` for ``num_seeds`` seeds in one ``jit(vmap(...))``.

    The configs may differ only in pytree-leaf fields (numbers: learning rates, discounts,
    coefficients); their leaves are stacked and vmapped like the seeds, so the whole grid is
    one compile. Every point uses the same ``num_seeds`` keys (common random numbers: points
    differ by their settings, not their luck). A config that differs in a static field (sizes,
    budgets, the env, anything that shapes the program) is a ``ValueError`` naming the field.
    ``points``: labels of the points (the varied fields and values) for the table and files.
    ``options``: as ``run``'s (``purembrl.driver.engine.Options``); ``out`` gets
    ``sweep.json``, ``sweep.csv`` and ``sweep.png``."""
    opts = engine.Options(**options)
    if opts.extend:
        raise ValueError("extend=True: a sweep cannot be continued with a longer budget yet; "
                         "start a new sweep")
    configs = list(configs)
    points = _check_sweep(configs, points, num_seeds)
    loop = algo.make_loop(configs[0])
    curve = engine.curve_of(algo, configs[0])
    num_points = len(configs)
    if opts.out is not None:  # the results so far after every chunk, then the user's callback
        def write(metrics, seconds):
            shaped = {k: v.reshape(num_points, num_seeds, *v.shape[1:])
                      for k, v in metrics.items()}
            report.write_sweep(opts.out, algo, configs[0], seed,
                               SweepResult(points, None, shaped, seconds, curve, False),
                               plot=False)

        opts = dataclasses.replace(opts, progress_fn=training.partial_writer(opts, write))
    init, scan_steps = engine.guarded(*sweep_member(algo))
    groups = lane_groups(configs, num_seeds)
    batch = engine.Batch(
        label=f"[{report.algo_name(algo)} sweep] {num_points} points x {num_seeds} seeds",
        init=engine.batched(init),
        scan_steps=(engine.batched(scan_steps, in_axes=(0, None, None)) if groups is None
                    else by_groups(scan_steps, groups)),
        inputs=sweep_inputs(configs, seed, num_seeds), num_iterations=loop.num_iterations,
        identity=sweep_identity(algo, configs, seed, num_seeds), curve=curve,
        whole=(None if engine.episode_loop(algo, configs[0]) is None else engine.pooled(
            sweep_member_episodes(algo, configs, grouped=groups is not None), groups)))
    with engine.writing(opts):  # one writer per run directory
        carry, metrics, seconds, done = engine.drive(batch, opts)
        if is_main_process():
            report.report_nonfinite(
                metrics, [f"point {p} seed {i}" for p in points for i in range(num_seeds)])
        metrics = {k: v.reshape(num_points, num_seeds, *v.shape[1:])
                   for k, v in metrics.items()}
        result = SweepResult(points=points, state=carry[0][1], metrics=metrics,
                             seconds=seconds, curve=curve,
                             complete=done == loop.num_iterations)
        if is_main_process():
            if opts.table:
                print(report.sweep_table(result))
            if opts.out is not None:
                report.write_sweep(opts.out, algo, configs[0], seed, result)
    return result


def lane_groups(configs: Sequence[Any], num_seeds: int) -> np.ndarray | None:
    """The sweep's lanes (points x seeds, point-major) grouped by the values of the fields
    the config class names in ``SWEEP_GROUPS``, as a lane order ``[groups, lanes per group]``,
    or None for one group.

    Vmapped runs move in lockstep: a loop whose trip count is a swept leaf (Dyna-Q's
    ``planning_steps``) runs as many times as the batch's largest value, masked for the
    others, and a loop that ends on a run's own event (an episode) waits for the batch's
    slowest run. A config class lists such fields in ``SWEEP_GROUPS``; the sweep then steps
    each group of equal values apart (one ``vmap`` per group, in a ``lax.map``: still one
    compile), so every group pays for its own values. The results are the same either way.
    Groups of unequal size (a grid that is not a product) are not split."""
    fields = getattr(type(configs[0]), "SWEEP_GROUPS", ())
    if not fields:
        return None

    def value(config, name):
        for part in name.split("."):
            config = getattr(config, part)
        return report.plain(_as_dict_value(config))

    keys = [repr([value(c, name) for name in fields]) for c in configs]
    distinct = list(dict.fromkeys(keys))
    sizes = {keys.count(k) for k in distinct}
    if len(distinct) < 2 or len(sizes) != 1:
        return None
    lanes = np.arange(len(configs) * num_seeds).reshape(len(configs), num_seeds)
    return np.stack([lanes[[i for i, k in enumerate(keys) if k == key]].reshape(-1)
                     for key in distinct])


def by_groups(scan_steps, groups: np.ndarray):
    """``scan_steps(carry, start, length)`` batched over the lanes of ``carry`` group by group
    (``groups``: ``lane_groups``'s order): one ``vmap`` per group under ``lax.map`` (one
    compile), the outputs put back in lane order."""
    vmapped = jax.vmap(scan_steps, in_axes=(0, None, None))
    order, inverse = groups.reshape(-1), np.argsort(groups.reshape(-1))

    def call(carry, start, length):
        split = jax.tree.map(lambda x: x[order].reshape(*groups.shape, *x.shape[1:]), carry)
        out = jax.lax.map(lambda c: vmapped(c, start, length), split)
        return jax.tree.map(lambda x: x.reshape(order.size, *x.shape[2:])[inverse], out)

    return call


def _check_sweep(configs: list[Any], points, num_seeds: int) -> list[dict[str, Any]]:
    """The points' labels, after checking the configs differ only in pytree leaves."""
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
    return points


def sweep_inputs(configs: Sequence[Any], seed: int, num_seeds: int):
    """The batch a sweep is vmapped over: every config's leaves stacked and repeated per seed,
    and the same ``num_seeds`` keys for every point (point-major)."""
    stacked = jax.tree.map(lambda *xs: jnp.repeat(jnp.stack([jnp.asarray(x) for x in xs]),
                                                  num_seeds, axis=0), *configs)
    return stacked, jnp.tile(engine.seed_keys(seed, num_seeds), len(configs))


def sweep_member(algo: ModuleType):
    """One sweep member's ``(init(config, key), step(carry, iteration))``: its config rides in
    the carry, so each member builds its loop from its own (traced) settings."""
    def member_init(config, key):
        return config, algo.make_loop(config).init(key)

    def member_step(carry, iteration):
        config, state = carry
        state, metrics = algo.make_loop(config).step(state, iteration)
        return (config, state), metrics

    return member_init, member_step


def sweep_member_episodes(algo: ModuleType, configs: Sequence[Any], grouped: bool = False):
    """``sweep_member`` as a function ``states -> EpisodeLoop`` of one group's member states
    (carry ``(config, state)``; each record keeps its config for its report): a sweep of
    episode-indexed runs then plays them as a pool (``engine.pooled``).

    Only what varies stays batched. A leaf that every config of ``configs`` shares is the
    Python constant (as in a plain run: an env's slip branch with ``slip_prob=0`` then folds
    away, which made the pooled Figure 8.2 sweep's n = 0 runs 1.4x slower as a traced leaf);
    with ``grouped`` (``lane_groups`` split the lanes by the ``SWEEP_GROUPS`` fields) those
    fields are taken from the group's first lane, one unbatched value, so a loop whose trip
    count is one (Dyna-Q's ``planning_steps``) runs as one loop, not as a batched ``while``
    that selects its whole carry between old and new every time round (2x slower). The
    numbers are the same (tested against the chunked sweep)."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(configs[0])
    firsts = [leaf for _, leaf in paths]
    columns = list(zip(*[jax.tree.leaves(c) for c in configs], strict=True))
    constant = [all(np.array_equal(np.asarray(v), np.asarray(column[0])) for v in column)
                for column in columns]
    names = set(getattr(type(configs[0]), "SWEEP_GROUPS", ())) if grouped else set()
    in_group = [".".join(str(getattr(k, "name", k)) for k in path) in names for path, _ in paths]

    def for_group(states):
        group_first = jax.tree.leaves(jax.tree.map(lambda x: x[0], states[0]))

        def settle(config):
            leaves = jax.tree.leaves(config)
            return treedef.unflatten([
                first if same else group if grouping else leaf
                for leaf, first, same, group, grouping in zip(
                    leaves, firsts, constant, group_first, in_group, strict=True)])

        return _member_episodes(algo, configs[0], settle)

    return for_group


def _member_episodes(algo: ModuleType, config: Any, settle) -> EpisodeLoop:
    def loop(config):
        return algo.make_episode_loop(settle(config))

    def begin(carry):
        config, state = carry
        state, aux = loop(config).begin(state)
        return (config, state), aux

    def step(carry):
        config, state = carry
        state, reward, done = loop(config).step(state)
        return (config, state), reward, done

    return EpisodeLoop(
        init=lambda inputs: (inputs[0], loop(inputs[0]).init(inputs[1])), begin=begin,
        step=step,
        end=lambda carry, aux, length, ret: (carry[0], loop(carry[0]).end(carry[1], aux, length,
                                                                          ret)),
        report=lambda record: loop(record[0]).report(record[1]),
        num_episodes=loop(config).num_episodes)


def sweep_identity(algo: ModuleType, configs: Sequence[Any], seed: int,
                   num_seeds: int) -> dict[str, Any]:
    """What makes two sweeps the same sweep (stored in checkpoints, compared on resume)."""
    return {"algorithm": report.algo_name(algo),
            "sweep": report.plain([as_dict(c) for c in configs]), "seed": seed,
            "num_seeds": num_seeds}


def sweepable_fields(config_cls: type, prefix: str = "") -> list[str]:
    """The (dotted) fields of a config class that a sweep may vary: its pytree leaves (of any
    of the classes a field such as ``learner`` may hold)."""
    out = []
    hints = field_types(config_cls)
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("pytree_node", True):
            continue
        choices = config_choices(hints.get(f.name))
        if choices:
            nested = [name for c in choices for name in sweepable_fields(c, f"{prefix}{f.name}.")]
            out += list(dict.fromkeys(nested))
        else:
            out.append(f"{prefix}{f.name}")
    return out


def static_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the static fields in which two configs of one class differ."""
    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x) and type(x) is type(y):
            out += static_differences(x, y, f"{prefix}{f.name}.")
        elif not f.metadata.get("pytree_node", True) and (
                report.plain(_as_dict_value(x)) != report.plain(_as_dict_value(y))):
            out.append(f"{prefix}{f.name}")
        elif (x is None) != (y is None) or (dataclasses.is_dataclass(x)
                                            and type(x) is not type(y)):  # another learner
            out.append(f"{prefix}{f.name}")
    return out


def _as_dict_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return as_dict(value)
    if isinstance(value, np.ndarray | jax.Array):
        return np.asarray(value).tolist()
    return value
