"""Command line: ``python -m purembrl train ALGO ...`` and ``python -m purembrl list``.

    python -m purembrl train ALGO [--env ENV] [--seeds N] [--seed S] [--set field=value ...]
                                  [--out DIR] [--chunks K] [--quiet] [--no-checkpoint]
    python -m purembrl train [ALGO ...] --resume DIR   [--no-compile-cache]
    python -m purembrl sweep ALGO --grid field=v1,v2,... [--grid ...] [train's options]
    python -m purembrl sweep --resume DIR
    python -m purembrl eval DIR [--episodes N] [--seed S]
    python -m purembrl list [ALGO [--env ENV] [--set field=value ...]]

Every command takes ``--import MODULE`` (a dotted name or a ``.py`` file, repeatable): the
module is imported first, so the algorithms and environments it registers
(``purembrl.algos.register``, ``purembrl.envs.register``) are known by name.

``train`` saves the whole training state to ``DIR/checkpoint.npz`` after every chunk;
``--resume DIR`` continues from it, bit-identical to an uninterrupted run: alone, the
algorithm, config, seed count and base seed come from the checkpoint; anything given with it
must agree. ``eval`` loads the trained agents of a checkpoint and runs their greedy
policies afresh. ``sweep`` trains the whole grid (every combination of the ``--grid``
values) x seeds under one ``jit(vmap)``; only numeric (pytree-leaf) fields can be swept. Bad
input (unknown algorithm, env or field, a malformed or out-of-range
value, an output path that is a file, a missing, corrupt or mismatched checkpoint) prints one
line on stderr and exits with code 2, before anything compiles or is overwritten.

``--out DIR`` (default ``runs/ALGO_ENV``, ``runs/ALGO_ENV_sweep`` for a sweep) is never
overwritten by accident: a directory holding another run's results is refused unless the
command resumes it (``--resume DIR``) or says ``--overwrite``; and one run at a time writes
there (a lock; a second run is refused naming the first one's pid).
"""

from __future__ import annotations

import sys

from purembrl import interrupts

_DISTRIBUTED = ("--distributed", "--coordinator", "--num-processes", "--process-id")
if (__name__ == "__main__" and sys.argv[1:2] in (["train"], ["sweep"])
        and not any(a.split("=")[0] in _DISTRIBUTED for a in sys.argv)):
    interrupts.install()  # first, before jax is imported: a signal during any import is clean

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402

import numpy as np  # noqa: E402

from purembrl import algos  # noqa: E402
from purembrl.config import as_dict, field_types, parse_value, update  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, as for every other bad input
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_config(algo, env: str | None, sets: list[str], base=None):
    """The algorithm's ``Config.for_env`` from ``--env`` and ``--set field=value`` strings
    (``--set group.field=value`` sets a field of a nested config, such as the learner's;
    ``--set env.NAME=VALUE`` an environment parameter, into ``env_params``); with
    ``base`` (a resumed run's stored config), those settings go on top of it instead."""
    values, nested, env_sets = {}, {}, []
    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected field=value")
        name, text = item.split("=", 1)
        name = name.strip()
        if name.startswith("env.") and "env_params" in field_types(algo.Config):
            env_sets.append(f"{name[4:]}={text.strip()}")  # an env parameter: env_params
            continue
        value = parse_value(algo.Config, name, text.strip())
        if "." in name:
            group, field = name.split(".", 1)
            nested.setdefault(group, {})[field] = value
        else:
            values[name] = value
    if env is not None:
        if "env" not in field_types(algo.Config):
            raise ValueError("--env: this algorithm has no env field")
        values["env"] = env
    config = algo.Config.for_env(**values) if base is None else base.replace(**values)
    if env_sets:  # --set env.NAME=VALUE: merged into env_params, the last of a name winning
        from purembrl import envs

        merged = {**envs.parse_params(config.env_params),
                  **envs.parse_params(",".join(env_sets))}
        config = config.replace(env_params=envs.format_params(merged))
    for group, fields in nested.items():
        current = getattr(config, group)
        if current is None and group == "learner":  # the default for the env's action space
            from purembrl import envs, interact, learners  # imports jax: after distributed

            current = learners.default_config(
                interact.spec(*envs.make(config.env, config.env_params)))
        if current is None:
            raise ValueError(f"{group}: not used with this configuration")
        config = update(config.replace(**{group: current}), **{group: fields})
    return config


def cmd_list(args) -> int:
    """Every algorithm with its envs and defaults; with ``ALGO``, its resolved config for
    ``--env`` (presets applied), one line per field with the field's documentation."""
    if args.algo is not None:
        from purembrl.config import describe

        try:
            algo = algos.get(args.algo)
            config = build_config(algo, args.env, args.set)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        doc = (algo.__doc__ or "").strip().splitlines()[0]
        env = getattr(config, "env", None)
        preset = "" if env is None else (
            f" for {env} (its preset)" if env in getattr(algo.Config, "PRESETS", {})
            else f" for {env} (generic defaults: no preset)")
        print(f"{args.algo}: {doc}\nconfig{preset}; --set FIELD=VALUE changes one:")
        print("\n".join("  " + line for line in describe(config)))
        return 0
    if args.env is not None or args.set:
        print("error: list: --env and --set need an algorithm (list ALGO --env ENV)",
              file=sys.stderr)
        return 2
    for name in algos.names():
        algo = algos.get(name)
        doc = (algo.__doc__ or "").strip().splitlines()[0]
        print(f"{name}: {doc}")
        print(f"  envs: {', '.join(getattr(algo, 'ENVS', ()))}")
        if getattr(algo, "PRESETS", None):
            print(f"  presets: {', '.join(algo.PRESETS)} (other gymnax envs: generic defaults)")
        defaults = as_dict(algo.Config.for_env())  # the default env's preset
        flat = {}
        for key, value in defaults.items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        print("  defaults: " + ", ".join(f"{k}={v}" for k, v in flat.items()))
    print("`list ALGO [--env ENV]`: every field of ALGO's config for ENV, documented")
    return 0


def parse_grid(algo, items: list[str]) -> dict[str, list[str]]:
    """``--grid field=v1,v2`` strings as {field: [value texts]}; each value is checked by
    parsing it as the field's type, and the field must be one a sweep can vary."""
    from purembrl.run import sweepable_fields

    grid: dict[str, list[str]] = {}
    allowed = sweepable_fields(algo.Config)
    for item in items:
        if "=" not in item:
            raise ValueError(f"--grid {item!r}: expected field=value1,value2,...")
        name, text = (part.strip() for part in item.split("=", 1))
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise ValueError(f"--grid {item!r}: no values")
        if name in grid:
            raise ValueError(f"--grid {name}: given twice")
        for value in values:
            try:
                parse_value(algo.Config, name, value)
            except ValueError as err:  # unknown field or a bad value
                raise ValueError(f"--grid {name}: {err}") from None
        if name not in allowed:
            raise ValueError(f"--grid {name}: a static field (it sets shapes, budgets or the "
                             "program's structure, so it cannot vary inside one compile); "
                             f"fields a grid can vary: {', '.join(allowed)}")
        grid[name] = values
    if not grid:
        raise ValueError("sweep needs at least one --grid field=v1,v2,...")
    return grid


def _check_resume(run, out: str, identity: dict) -> None:
    """A missing, corrupt or mismatched checkpoint is refused before anything compiles."""
    from purembrl import checkpoint

    path = os.path.join(out, run.CHECKPOINT)
    run.check_same_run(path, checkpoint.read_meta(path), identity)


def _resume_extends(run, algo, config, out: str, args) -> bool:
    """Check ``--resume DIR`` against DIR's checkpoint before anything compiles: False when it
    holds this very run; True when it holds it with a smaller budget that the config's
    ``check_extension`` accepts (``--set total_steps=N`` trains a run longer); otherwise a
    ``ValueError`` naming what differs (for a changed config: why it cannot continue)."""
    from purembrl import checkpoint

    path = os.path.join(out, run.CHECKPOINT)
    meta = checkpoint.read_meta(path)
    identity = run.run_identity(algo, config, args.seed, args.seeds)
    try:
        run.check_same_run(path, meta, identity)
        return False
    except checkpoint.CheckpointError:
        if any(meta.get(k) != v for k, v in identity.items() if k != "config"):
            raise  # another algorithm, seed or seed count: never a continuation
    from purembrl.config import from_dict

    run.check_extension(algo, config, from_dict(algo.Config, meta["config"]))
    return True


def _out_dir(args, default: str) -> str:
    if args.resume is not None and args.out is not None and args.out != args.resume:
        raise ValueError(f"--resume {args.resume} and --out {args.out}: a resumed run "
                         "writes where its checkpoint is; give one directory")
    if args.resume is not None and args.overwrite:
        raise ValueError("--resume and --overwrite: a resumed run continues its directory's "
                         "results; give one of them")
    return args.resume or args.out or default


def _claim_out(run, out: str, args) -> bool:
    """Refuse a directory holding another run's results (unless resuming it or told to
    overwrite it), create it, and take its lock for this process's lifetime (a second writer
    is refused naming our pid); with ``--overwrite``, the old results go once the lock is
    held. Returns whether this call created the directory."""
    from purembrl.driver import rundir

    if args.resume is None:
        run.check_fresh(out, overwrite=args.overwrite)
    created = not os.path.exists(out)
    run.prepare_out(out)
    if run.is_main_process():
        rundir.acquire(out)  # released when the process exits
        interrupts.set_out(out)
        if args.overwrite:
            run.remove_results(out)
    return created


def _check_counts(args) -> None:
    from purembrl.driver.engine import SEED_RANGE

    if not SEED_RANGE[0] <= args.seed <= SEED_RANGE[1]:
        raise ValueError(f"--seed {args.seed}: allowed an integer in [-2**63, 2**63 - 1]")
    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}: allowed an integer >= 1")
    if args.chunks is not None and args.chunks < 1:
        raise ValueError(f"--chunks {args.chunks}: allowed an integer >= 1")


def _stored_run(args):
    """``(algo, stored config)`` for ``train --resume DIR`` without ALGO: the algorithm, the
    config, the seed count and the base seed come from DIR's checkpoint (a seed or seed count
    given on the command line must agree, as must any ``--env``/``--set``: the identity check
    refuses a differing one). Otherwise ``(algos.get(ALGO), None)``, with the default seeds."""
    if args.algo is not None:
        args.seeds = 1 if args.seeds is None else args.seeds
        args.seed = 0 if args.seed is None else args.seed
        return algos.get(args.algo), None
    if args.resume is None:
        raise ValueError("train needs ALGO, or --resume DIR to continue a run")
    from purembrl.config import from_dict

    algo, meta = _resumed(args, sweep=False)
    return algo, from_dict(algo.Config, meta["config"])


def _resumed(args, sweep: bool):
    """``(algo, meta)`` of ``--resume DIR``'s checkpoint for a command given without ALGO:
    ``args.algo``, ``args.seeds`` and ``args.seed`` (where not given) come from it.
    ``ValueError`` when DIR holds the other kind (a sweep for ``train``, a run for ``sweep``),
    naming the command that continues it."""
    from purembrl import checkpoint, run

    meta = checkpoint.read_meta(os.path.join(args.resume, run.CHECKPOINT))
    if ("sweep" in meta) != sweep:
        other, what = ("train", "a single run") if sweep else ("sweep", "a sweep")
        raise ValueError(f"--resume {args.resume}: holds {what}; continue it with `{other} "
                         f"--resume {args.resume}`")
    args.algo = meta["algorithm"]
    args.seeds = meta["num_seeds"] if args.seeds is None else args.seeds
    args.seed = meta["seed"] if args.seed is None else args.seed
    return algos.get(meta["algorithm"]), meta


def _stored_sweep(args):
    """``(algo, configs, points)`` for ``sweep --resume DIR`` without ALGO: the algorithm,
    every point's config, the seed count and the base seed come from DIR's checkpoint; the
    points are labelled by the fields in which their configs differ. ``--grid``, ``--set`` and
    ``--env`` need ALGO (the identity check then compares them with the checkpoint)."""
    if args.resume is None:
        raise ValueError("sweep needs ALGO, or --resume DIR to continue a sweep")
    if args.grid or args.set or args.env is not None:
        raise ValueError("sweep --resume DIR without ALGO takes the grid, settings and env from "
                         "the checkpoint; give ALGO with --grid/--set/--env, or none of them")
    from purembrl.config import from_dict
    from purembrl.driver.report import flat

    algo, meta = _resumed(args, sweep=True)
    configs = [from_dict(algo.Config, c) for c in meta["sweep"]]
    rows = [flat(c) for c in meta["sweep"]]
    varied = [k for k in rows[0] if any(r.get(k) != rows[0][k] for r in rows)]
    return algo, configs, [{k: r[k] for k in varied} for r in rows]


def cmd_train(args) -> int:
    from purembrl import checkpoint, run  # imports jax; list and errors stay fast without it
    from purembrl.driver.engine import TooLarge, curve_of
    from purembrl.driver.logs import combine

    try:
        algo, stored = _stored_run(args)
        config = build_config(algo, args.env, args.set, base=stored)
        algo.make_train(config)  # the checks that need the env (builds it; compiles nothing)
        _check_counts(args)
        out = _out_dir(args, f"runs/{args.algo}_{config.env}")
        extend = args.resume is not None and _resume_extends(run, algo, config, out, args)
        loggers = _loggers(args, out, curve_of(algo, config), [config])
        created = _claim_out(run, out, args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = run.run(algo, config, args.seeds, seed=args.seed, out=out,
                         num_chunks=args.chunks, progress=not args.quiet,
                         checkpoint=not args.no_checkpoint, resume=args.resume is not None,
                         extend=extend, progress_fn=combine(*loggers))
    except TooLarge as err:
        return _refused(err, out, created)
    except checkpoint.CheckpointError as err:  # a resumed checkpoint refused as it loads
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        for logger in loggers:
            logger.close()
    saved = "" if args.no_checkpoint else f", {out}/{run.CHECKPOINT}"
    if run.is_main_process():
        print(f"wrote {out}/metrics.json, {out}/curve.csv, {out}/curve.png{saved}"
              + ("" if result.complete else " (partial run)"))
    return _interrupted(result, out, args)


def _refused(err: Exception, out: str, created: bool) -> int:
    """A run refused before it allocated anything (``engine.TooLarge``): one line, exit 2, and
    the run directory removed again if this command created it."""
    from purembrl.driver import rundir
    from purembrl.driver.devices import is_main_process

    print(f"error: {err}", file=sys.stderr)
    if created and is_main_process():
        rundir.release(out)
        with contextlib.suppress(OSError):
            os.remove(os.path.join(out, rundir.LOCK_FILE))
            os.rmdir(out)
    return 2


def _interrupted(result, out: str, args) -> int:
    """0; after a signal that stopped the run early one line and 130 (SIGINT) / 143; when
    every seed diverged (the run stops there), one line and 1."""
    from purembrl.driver.engine import all_diverged

    diverged = all_diverged(result.metrics)
    if diverged is not None:
        print(f"error: every run diverged (a non-finite number) by iteration {diverged}; the "
              f"run stopped there, its metrics and each run's last finite state are in {out}",
              file=sys.stderr)
        return 1
    signum = interrupts.requested()
    if signum is None or result.complete:
        return 0
    hint = ("resume with the same command and --resume " + out if not args.no_checkpoint
            else "no checkpoint was saved (--no-checkpoint)")
    print(f"interrupted by {signal.Signals(signum).name}: stopped after a complete chunk; "
          f"{hint}", file=sys.stderr)
    return interrupts.exit_code(signum)


def cmd_sweep(args) -> int:
    import itertools

    from purembrl import checkpoint, run
    from purembrl.driver.engine import TooLarge, curve_of
    from purembrl.driver.logs import combine

    try:
        if args.algo is None:
            algo, configs, points = _stored_sweep(args)
        else:
            args.seeds = 1 if args.seeds is None else args.seeds
            args.seed = 0 if args.seed is None else args.seed
            algo = algos.get(args.algo)
            grid = parse_grid(algo, args.grid)
            combos = list(itertools.product(*grid.values()))
            configs = [build_config(algo, args.env, [*args.set, *(
                f"{name}={value}" for name, value in zip(grid, combo, strict=True))])
                for combo in combos]
            points = [{name: parse_value(algo.Config, name, value)
                       for name, value in zip(grid, combo, strict=True)} for combo in combos]
        algo.make_train(configs[0])  # the checks that need the env; a grid varies no static
        _check_counts(args)
        out = _out_dir(args, f"runs/{args.algo}_{configs[0].env}_sweep")
        if args.resume is not None:
            _check_resume(run, out, run.sweep_identity(algo, configs, args.seed, args.seeds))
        loggers = _loggers(args, out, curve_of(algo, configs[0]), configs, points)
        created = _claim_out(run, out, args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = run.sweep(algo, configs, args.seeds, points=points, seed=args.seed, out=out,
                           num_chunks=args.chunks, progress=not args.quiet,
                           checkpoint=not args.no_checkpoint, resume=args.resume is not None,
                           progress_fn=combine(*loggers))
    except TooLarge as err:
        return _refused(err, out, created)
    except checkpoint.CheckpointError as err:  # a resumed checkpoint refused as it loads
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        for logger in loggers:
            logger.close()
    if run.is_main_process():
        print(f"wrote {out}/sweep.json, {out}/sweep.csv, {out}/sweep.png"
              + ("" if result.complete else " (partial run)"))
    return _interrupted(result, out, args)


def cmd_eval(args) -> int:
    from purembrl import run

    try:
        if args.episodes < 1:
            raise ValueError(f"--episodes {args.episodes}: allowed an integer >= 1")
        run.check_seed(args.seed, "--seed")
        returns, lengths, meta = run.evaluate_checkpoint(args.dir, args.episodes, args.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seeds = meta["num_seeds"]
    labels = ([f"point {i // seeds} seed {i % seeds}" for i in range(len(returns))]
              if "sweep" in meta else [f"seed {i}" for i in range(len(returns))])
    done = f"{meta['done']}/{meta['num_iterations']} iterations"
    print(f"{meta['algorithm']}: greedy policy, {args.episodes} episodes per run ({done})")
    for label, ret, length in zip(labels, returns, lengths, strict=True):
        print(f"  {label:<18} return {ret:10.4g}   length {length:7.1f}")
    q25, med, q75 = np.percentile(returns, [25, 50, 75])
    print(f"  median return {med:.4g} [IQR {q25:.4g}, {q75:.4g}] over {len(returns)} runs")
    return 0


def cmd_compare(args) -> int:
    from purembrl.driver import compare

    try:
        if args.reps < 100:
            raise ValueError(f"--reps {args.reps}: allowed an integer >= 100")
        if not 0 <= args.seed < 2**32:
            raise ValueError(f"--seed {args.seed}: allowed an integer in [0, 2**32 - 1]")
        entries = [e for d in args.dirs for e in compare.load(d)]
        compare.check_comparable(entries)
        print(compare.table(entries, args.reps, args.seed))
        if args.plot is not None:
            compare.plot(args.plot, entries, args.reps, args.seed)
            print(f"wrote {args.plot}")
    except (ValueError, ImportError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _import_option(parser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import a module (a dotted name, or a .py file) "
                        "first: your own algorithms and envs register themselves there")


def import_modules(names: list[str]) -> None:
    """``--import``: import each module (a dotted name on ``sys.path``, the current directory
    included, or a ``.py`` file's path) so that it registers its algorithms and envs
    (``purembrl.algos.register``, ``purembrl.envs.register``). ``ValueError`` (one line) when
    one cannot be found; an error raised inside the module propagates as it is."""
    import importlib
    import importlib.util

    if names and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        if name.endswith(".py"):
            if not os.path.isfile(name):
                raise ValueError(f"--import {name}: no such file")
            module_name = os.path.splitext(os.path.basename(name))[0]
            spec = importlib.util.spec_from_file_location(module_name, name)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                if err.name is None or not name.startswith(err.name):
                    raise  # the module exists and itself imports something missing
                raise ValueError(f"--import {name}: no module named {err.name!r}") from None


LOGGERS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # --log NAME: its directory in DIR


def _loggers(args, out: str, curve: tuple[str, str], configs: list, points=None) -> list:
    """The ``--log`` backends (``purembrl.driver.logs``), made on the main process only. A
    sweep's runs are labelled by their point (``lr=0.001/seed_0``) and aggregated per point.
    A resumed run keeps logging where it did (``DIR/tensorboard``, ``DIR/wandb`` exist)
    without ``--log``. ``ValueError`` (one line) when a backend's package is missing."""
    from purembrl.driver import logs
    from purembrl.driver.devices import is_main_process
    from purembrl.driver.report import plain

    if args.resume is not None:
        args.log = [*args.log, *(name for name, sub in LOGGERS.items()
                                 if os.path.isdir(os.path.join(out, sub)))]
    if not args.log or not is_main_process():
        return []
    labels = groups = None
    names = ["" for _ in configs]
    if points is not None:
        names = [",".join(f"{k}={v}" for k, v in p.items()).replace("/", "_") or f"point_{i}"
                 for i, p in enumerate(points)]
        labels = [f"{n}/seed_{s}" for n in names for s in range(args.seeds)]
        groups = {f"{n}/aggregate": range(i * args.seeds, (i + 1) * args.seeds)
                  for i, n in enumerate(names)}
    by_point = {n: plain(as_dict(c)) for n, c in zip(names, configs, strict=True)}
    made = []
    for name in dict.fromkeys(args.log):
        try:
            if name == "tensorboard":
                made.append(logs.TensorBoard(os.path.join(out, logs.TENSORBOARD_DIR), curve,
                                             labels, groups))
            else:
                made.append(logs.WandB(out, curve, labels, groups,
                                       group=os.path.basename(os.path.abspath(out)),
                                       config=lambda run: by_point[run.rpartition("/")[0]]))
        except ImportError as err:
            raise ValueError(f"--log {name}: {err}") from None
    return made


def _run_options(parser) -> None:
    """The options ``train`` and ``sweep`` share."""
    _import_option(parser)
    parser.add_argument("algo", nargs="?", default=None,
                        help="the algorithm (`list` names them); with --resume DIR it may be "
                             "omitted: the run's (or sweep's) own is used")
    parser.add_argument("--env", default=None, help="the environment (default: the "
                        "algorithm's; `list` names them)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds trained at once (default 1, or the resumed run's)")
    parser.add_argument("--seed", type=int, default=None,
                        help="base seed the per-seed keys derive from (default 0, or the "
                             "resumed run's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a config field (FIELD.SUB for a nested config), repeatable")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where results and checkpoints go (default runs/ALGO_ENV, "
                             "runs/ALGO_ENV_sweep for a sweep); a directory holding another "
                             "run's results is refused unless --resume or --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of a previous run in --out")
    parser.add_argument("--chunks", type=int, default=None,
                        help="chunks the run is split into (default: the whole run at once "
                             "where its runs can play their episodes without waiting for "
                             "each other, tabular Dyna-Q's episode mode; else 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--no-checkpoint", action="store_true",
                        help="do not save the training state after each chunk")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue the run whose checkpoint is in DIR")
    parser.add_argument("--log", action="append", default=[], choices=list(LOGGERS),
                        help="also log to this backend, repeatable: tensorboard (event files "
                             "per seed and the median / IQM in DIR/tensorboard), wandb (a W&B "
                             "run per seed and one for the median / IQM, grouped; "
                             "WANDB_MODE=offline works without a network); needs "
                             "purembrl[log]")
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="do not load or store compiled programs (default: JAX's "
                             "persistent cache in $PUREMBRL_CACHE_DIR or "
                             "~/.cache/purembrl/jax)")
    parser.add_argument("--distributed", action="store_true",
                        help="join a multi-host run (jax.distributed; the cluster is detected "
                             "unless --coordinator is given); seeds shard over all its devices")
    parser.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                        help="multi-host: process 0's address (with --num-processes and "
                             "--process-id)")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)


def cache_dir() -> str:
    """Where the command line keeps compiled programs: ``$PUREMBRL_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/purembrl/jax`` (``~/.cache/purembrl/jax``)."""
    if os.environ.get("PUREMBRL_CACHE_DIR"):
        return os.environ["PUREMBRL_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "purembrl", "jax")


def _compile_cache(args) -> None:
    """JAX's persistent compilation cache, on unless ``--no-compile-cache``: a second run of
    the same program (same algorithm, config shapes, seeds, chunk length) loads it instead of
    compiling it (benchmarks/RESULTS.md has the seconds saved). Every program is stored, not
    only those that compile in over a second (JAX's default threshold): setting up a Brax
    environment runs about 600 single operations eagerly, each its own small compile, 22 s for
    Hopper, which a warm cache loads in about 6 s. A threshold the user set
    (``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``) is kept."""
    if getattr(args, "no_compile_cache", False):
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", cache_dir())
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _start_distributed(args) -> None:
    """``--distributed`` / ``--coordinator``: join the multi-host run before anything starts a
    JAX backend; ``ValueError`` for an incomplete or inconsistent set of options."""
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if not args.distributed and all(x is None for x in explicit):
        return
    if any(x is not None for x in explicit):
        if any(x is None for x in explicit):
            raise ValueError("--coordinator, --num-processes and --process-id go together")
        if args.num_processes < 1 or not 0 <= args.process_id < args.num_processes:
            raise ValueError(f"--process-id {args.process_id} is invalid: allowed 0 <= id < "
                             f"--num-processes ({args.num_processes})")
    from purembrl import run
    run.init_distributed(*explicit)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m purembrl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="algorithms, their environments and defaults; with "
                                          "ALGO, its config for --env, documented")
    listing.add_argument("algo", nargs="?", default=None,
                         help="print this algorithm's resolved config, one line per field")
    listing.add_argument("--env", default=None, help="the environment whose preset applies")
    listing.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                         help="show the config with this field changed (as train takes it)")
    _import_option(listing)
    train = sub.add_parser("train", help="train N seeds of an algorithm under one jit(vmap)")
    _run_options(train)
    sweep = sub.add_parser("sweep", help="train a grid of numeric settings x N seeds under "
                                         "one jit(vmap)")
    _run_options(sweep)
    sweep.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                       help="values of one numeric field; several --grid: every combination")
    comparing = sub.add_parser("compare", help="runs (or sweep points) side by side: final "
                               "median / IQM / mean with 95%% bootstrap CIs and the "
                               "probability of improvement (rliable)")
    comparing.add_argument("dirs", nargs="+", metavar="DIR",
                           help="a train or sweep output directory (its metrics.json or "
                                "sweep.json); a sweep gives one entry per point")
    comparing.add_argument("--plot", default=None, metavar="FILE.png",
                           help="also draw the IQM learning curves with their 95%% bands")
    comparing.add_argument("--reps", type=int, default=2000,
                           help="bootstrap resamples (rliable recommends 2000 or more)")
    comparing.add_argument("--seed", type=int, default=0,
                           help="seed of the bootstrap resampling")
    evaluate = sub.add_parser("eval", help="evaluate the trained agents of a checkpoint")
    evaluate.add_argument("dir", help="a train or sweep output directory (its checkpoint.npz)")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes")
    evaluate.add_argument("--no-compile-cache", action="store_true",
                          help="do not load or store compiled programs")
    _import_option(evaluate)
    args = parser.parse_args(argv)
    try:
        import_modules(getattr(args, "imports", []))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "list":
        return cmd_list(args)
    if args.command == "compare":
        return cmd_compare(args)
    _compile_cache(args)
    if args.command == "eval":
        return cmd_eval(args)
    try:
        _start_distributed(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return cmd_sweep(args) if args.command == "sweep" else cmd_train(args)


if __name__ == "__main__":
    sys.exit(main())
