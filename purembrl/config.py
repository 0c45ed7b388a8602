"""Helpers for algorithm configs: static fields, presets and validation that names what is wrong.

An algorithm's ``Config`` is a frozen ``flax.struct`` dataclass. Fields that fix shapes, loop
lengths or the environment are *static* (``static(...)``: part of the treedef, a change means a
recompile); numeric hyperparameters are pytree leaves, so a user can ``jax.vmap`` over a batch of
configs (rejax's pattern). Every field has a concrete default (the algorithm's generic setting,
from its paper); ``Config.for_env(env, **overrides)`` (``Presets``) starts from the env's tuned
preset instead. ``__post_init__`` only validates, with no side effects (it builds no env: JAX
calls the constructor whenever it rebuilds a config, as in every ``jax.tree.map``), and raises
``ValueError`` naming the field, the value and the allowed range. Checks that need the env
itself (its action space, its episode length) run where training is built, in ``make_loop``.
When JAX rebuilds a config from traced leaves (under ``jit``/``vmap``) the traced values are
skipped: they were checked when the concrete config was built.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any

import jax
import numpy as np
from flax import struct


def static(default: Any) -> Any:
    """A config field that is part of the pytree structure (shapes, loop lengths, names)."""
    return struct.field(pytree_node=False, default=default)


class Presets:
    """Mixin for a config class: ``for_env(env, **overrides)`` builds the config from the env's
    preset.

    A class sets ``PRESETS = {env name: {field: value}}``; ``for_env`` starts from the class's
    defaults, applies ``PRESETS[env]`` (when there is one) and then ``overrides``, so an override
    always wins and a field set neither way keeps its default. It is the one constructor that
    reads presets (the CLI, the benchmarks and the tests call it); the plain constructor takes
    exactly the fields it is given.
    """

    PRESETS: Mapping[str, Mapping[str, Any]] = {}
    # Fields added after runs were saved, whose default changed what those runs do: {field: the
    # value that reproduces them}. A stored config (a checkpoint's, a results file's) that lacks
    # such a field reads back with this value instead of today's default (``from_dict``), so an
    # old run resumes as it ran; a field added with a default that keeps the old behaviour
    # needs no entry.
    ADDED_FIELDS: Mapping[str, Any] = {}

    @classmethod
    def for_env(cls, env: str | None = None, **overrides: Any):
        """The config for ``env`` (default: the class's default env) from its preset, with
        ``overrides`` on top."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if "env" not in fields:
            if env is not None:
                raise ValueError(f"env={env!r} is invalid: {cls.__module__}.{cls.__qualname__} "
                                 "has no env field")
            return cls(**overrides)
        env = fields["env"].default if env is None else env
        return cls(**{"env": env, **cls.PRESETS.get(env, {}), **overrides})


def _concrete(value: Any) -> np.ndarray | None:
    """The value as a NumPy array, or None when it is not a concrete number.

    Under ``jit``/``vmap``/``lower`` JAX rebuilds configs from tracers or placeholders; those
    were checked when the concrete config was built.
    """
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, bool | int | float | complex | str | np.ndarray | np.generic | jax.Array):
        return np.asarray(value)
    return None


def check(name: str, value: Any, ok: Callable[[np.ndarray], Any], allowed: str) -> None:
    """Raise ``ValueError`` unless ``ok(value)`` holds for every element of a concrete value.

    ``None`` is refused: an optional field checks its value only when one is given.
    """
    if value is None:
        raise ValueError(f"{name}=None is invalid: allowed {allowed}")
    arr = _concrete(value)
    if arr is None:
        return
    if arr.dtype.kind == "c" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
        raise ValueError(f"{name}={value!r} is invalid: allowed a finite real number, {allowed}")
    try:
        good = bool(np.all(ok(arr)))
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ValueError(f"{name}={value!r} is invalid: allowed {allowed}")


def _describe(kind: Any) -> str:
    """How an error message names the values a field of type ``kind`` holds."""
    if kind is bool:
        return "True or False"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a real number"
    if kind is str:
        return "a string"
    if kind is tuple or typing.get_origin(kind) is tuple:
        args = [a for a in typing.get_args(kind) if a is not Ellipsis]
        of = {int: " of integers", float: " of numbers"}.get(args[0], "") if args else ""
        return f"a tuple{of}"
    if dataclasses.is_dataclass(kind):
        return f"{'an' if kind.__name__[0] in 'AEIOU' else 'a'} {kind.__name__}"
    if typing.get_origin(kind) in (typing.Union, UnionType):
        members = [a for a in typing.get_args(kind) if a is not type(None)]
        if all(dataclasses.is_dataclass(a) for a in members):
            return "a config object (" + ", ".join(a.__name__ for a in members) + ", ...)"
        return " or ".join(_describe(a) for a in members)
    return getattr(kind, "__name__", repr(kind))


def _real_dtype(value: Any, kinds: str) -> bool | None:
    """For a NumPy or JAX array or scalar, whether its dtype kind is among ``kinds``; None for
    anything else."""
    if isinstance(value, np.ndarray | np.generic | jax.Array):
        return np.dtype(value.dtype).kind in kinds
    return None


def _fits(value: Any, kind: Any) -> bool:
    """Whether a concrete ``value`` may be held by a field of type ``kind``."""
    if typing.get_origin(kind) in (typing.Union, UnionType):
        return any(_fits(value, a) for a in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool | np.bool_)
    if kind is int:
        array = _real_dtype(value, "iu")
        return array if array is not None else (isinstance(value, int)
                                                and not isinstance(value, bool))
    if kind is float:  # complex and non-finite numbers are refused by ``check`` with the reason
        array = _real_dtype(value, "iufc")
        return array if array is not None else (isinstance(value, int | float | complex)
                                                and not isinstance(value, bool))
    if kind is str:
        return isinstance(value, str)
    if kind is tuple or typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, tuple):
            return False
        if not args:
            return True
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _fits(v, a) for v, a in zip(value, args, strict=True))
    if dataclasses.is_dataclass(kind):
        return isinstance(value, kind)
    return True  # a type this check does not know (a callable, Any): the field's own checks


INT32 = (-2**31, 2**31 - 1)  # JAX's integers (without x64): steps, sizes and counters


def check_types(config: Any) -> None:
    """``ValueError`` naming the first field of ``config`` whose value is of the wrong type.

    Call it first in a config's ``__post_init__``, before the value checks (which assume the
    types). ``int`` fields take integers, ``float`` fields real numbers (integers included),
    ``bool`` fields ``True``/``False``, ``str`` fields strings, tuple fields tuples (not lists:
    a config is hashable), a nested config field an instance of its class (a dict is refused,
    with the constructor to call), and a field that may hold several config classes (an
    algorithm's ``learner``) any config object: which one is checked against the registry
    (``purembrl.learners.check_config``). ``None`` only where the field is optional. An
    integer must fit JAX's int32 (steps and sizes are counted in it). Values JAX
    puts in a config while it traces (tracers, placeholders) are not checked.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), hints[f.name]
        if isinstance(value, jax.core.Tracer):
            continue
        optional = type(None) in typing.get_args(kind)
        kind = _unwrap_optional(kind)
        if value is None:
            if optional:
                continue
            raise ValueError(f"{f.name}=None is invalid: allowed {_describe(kind)}")
        concrete = (isinstance(value, bool | int | float | complex | str | bytes | list | tuple
                               | dict | set | np.ndarray | np.generic | jax.Array)
                    or dataclasses.is_dataclass(value))
        if not concrete:
            continue
        choices = config_choices(kind)
        if len(choices) > 1:
            ok = dataclasses.is_dataclass(value) and not isinstance(value, type)
        else:
            ok = _fits(value, kind)
        if ok:
            if (kind is int and isinstance(value, int | np.integer)
                    and not INT32[0] <= value <= INT32[1]):
                raise ValueError(f"{f.name}={value!r} is invalid: allowed an integer of at most "
                                 f"{INT32[1]:,} in absolute value (JAX counts in int32)")
            continue
        hint = ""
        if isinstance(value, dict) and choices:
            hint = (f" (build one: {choices[0].__name__}(**{{...}}); or merge into the "
                    f"current one: purembrl.config.update(config, {f.name}={{...}}))")
        elif isinstance(value, list) and (kind is tuple or typing.get_origin(kind) is tuple):
            hint = " (a list is not accepted: write a tuple)"
        raise ValueError(f"{f.name}={value!r} is invalid: allowed {_describe(kind)}{hint}")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """An integer in [low, high] (high None: unbounded); ``None`` is refused."""
    if value is None:
        raise ValueError(f"{name}=None is invalid: allowed an integer >= {low}"
                         + (f" and <= {high}" if high is not None else ""))
    arr = _concrete(value)
    if arr is None:
        return
    if isinstance(value, bool) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}={value!r} is invalid: allowed an integer >= {low}"
                         + (f" and <= {high}" if high is not None else ""))
    allowed = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
    check(name, value, lambda v: (v >= low) & ((v <= high) if high is not None else True),
          allowed)


def check_sizes(name: str, value: Any) -> None:
    """A non-empty tuple of positive integers (layer widths)."""
    if (not isinstance(value, tuple) or not value
            or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in value)):
        raise ValueError(f"{name}={value!r} is invalid: allowed a non-empty tuple of positive "
                         "integers")


def check_budget(total_steps: int, warmup_steps: int, warmup_name: str) -> None:
    """At least one step is trained after the warm-up (any budget and evaluation period run:
    ``purembrl.offpolicy`` cuts the last period at the budget)."""
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps={total_steps} is invalid: allowed more than "
                         f"{warmup_name} ({warmup_steps})")


def num_evaluations(total_steps: int, warmup_steps: int, eval_every: int) -> int:
    """Evaluations of a run: one after every ``eval_every`` trained steps and one at the end."""
    return -(-(total_steps - warmup_steps) // eval_every)


def check_extension(shorter: Any, longer: Any, budget: str, exact: bool, cut: str) -> None:
    """``ValueError`` unless ``longer`` is ``shorter`` with a larger (or equal) ``budget``
    field and nothing else changed, and ``exact`` (the shorter run's iterations are the first
    iterations of the longer one: continuing it equals the longer run from the start); ``cut``
    says why not when ``exact`` is False. Used by configs' ``check_extension`` (``train
    --resume DIR --set total_steps=N``)."""
    old, new = flat(as_dict(shorter)), flat(as_dict(longer))
    differ = sorted(k for k in set(old) | set(new) if k != budget and old.get(k) != new.get(k))
    if differ:
        raise ValueError(f"a resumed run may change only {budget} (to train longer); "
                         f"differing: {', '.join(differ)}")
    if getattr(longer, budget) < getattr(shorter, budget):
        raise ValueError(f"{budget}={getattr(longer, budget)} is invalid: allowed at least the "
                         f"run's {getattr(shorter, budget)} (a resumed run trains longer, "
                         "never shorter)")
    if not exact:
        raise ValueError(cut)


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists of dicts as {dotted name: leaf}."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def check_batch_fits(batch_size: int, buffer_size: int) -> None:
    """A minibatch is no larger than the replay buffer it is drawn from."""
    if batch_size > buffer_size:
        raise ValueError(f"batch_size={batch_size} is invalid: allowed at most "
                         f"buffer_size={buffer_size}")


def check_episode_horizon(name: str, value: int, max_steps: int) -> None:
    """An imagined horizon no longer than the environment's episodes (``max_steps``)."""
    if value > max_steps:
        raise ValueError(f"{name}={value} is invalid: allowed at most the env's episode "
                         f"length, {max_steps} steps")


def check_choice(name: str, value: Any, choices: typing.Iterable[Any]) -> None:
    """``ValueError`` naming ``name``, its value and the allowed ``choices`` if not among them."""
    choices = tuple(choices)
    if value not in choices:
        allowed = ", ".join(map(repr, choices))
        raise ValueError(f"{name}={value!r} is invalid: allowed one of {allowed}")


def _unwrap_optional(kind: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    args = typing.get_args(kind)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else kind
    return kind


def config_choices(kind: Any) -> tuple[type, ...]:
    """The config classes a field of type ``kind`` may hold: ``(X,)`` for a dataclass ``X``,
    the dataclass members of a union such as ``SACConfig | DQNConfig | None``, else ``()``."""
    if dataclasses.is_dataclass(kind):
        return (kind,)
    if typing.get_origin(kind) in (typing.Union, UnionType):
        return tuple(a for a in typing.get_args(kind) if dataclasses.is_dataclass(a))
    return ()


def short_name(config_cls: type) -> str:
    """``SACConfig`` -> ``"sac"``: how the command line names a config class."""
    name = config_cls.__name__
    return (name[:-len("Config")] if name.endswith("Config") else name).lower()


def field_types(config_cls: type) -> dict[str, type]:
    """Map each field of a config class to its type (``X | None`` read as ``X``)."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: _unwrap_optional(hints[f.name]) for f in dataclasses.fields(config_cls)}


def parse_value(config_cls: type, name: str, text: str) -> Any:
    """Parse ``text`` as the type of field ``name``; ``ValueError`` names the field on failure.

    ``name`` may be dotted (``learner.actor_lr``) to reach a field of a nested config (of the
    first class that has it, for a field that may hold several). A field holding a config
    parses the class's short name (``learner=dqn``) as that class's defaults.
    """
    types = field_types(config_cls)
    head, _, rest = name.partition(".")
    if head not in types:
        raise ValueError(f"unknown field {name!r}; fields are: {', '.join(sorted(types))}")
    choices = config_choices(types[head])
    if rest:
        if not choices:
            raise ValueError(f"unknown field {name!r}: {head} has no fields")
        field = rest.partition(".")[0]
        owners = [c for c in choices if field in field_types(c)]
        if not owners:
            raise ValueError(f"unknown field {name!r}; fields of {head} are: "
                             + ", ".join(sorted({f for c in choices for f in field_types(c)})))
        try:
            return parse_value(owners[0], rest, text)
        except ValueError as err:  # name the field as it was given: learner.critic_lr=...
            if str(err).startswith(f"{rest}="):
                raise ValueError(f"{head}.{err}") from None
            raise
    kind = types[name]
    if choices:
        by_name = {short_name(c): c for c in choices}
        if text.strip().lower() in by_name:
            return by_name[text.strip().lower()]()
        raise ValueError(f"{name}={text!r} is invalid: allowed one of {', '.join(by_name)} "
                         f"(or set {name}.FIELD=VALUE)")
    if typing.get_origin(kind) is tuple:
        try:
            return tuple(int(v) if v.strip().lstrip("-").isdigit() else float(v)
                         for v in text.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a comma-separated list of numbers") from None
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            try:
                return int(text)
            except ValueError:
                number = float(text)  # 1e6 is an integer written as a float
                if not number.is_integer():
                    raise
                return int(number)
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a valid {kind.__name__}") from None
    if kind is float and not np.isfinite(value):
        raise ValueError(f"{name}={text!r} is invalid: allowed a finite number")
    return value


def as_dict(config: Any) -> dict[str, Any]:
    """The config's fields as plain Python values (for JSON and for printing). A nested config
    in a field that may hold several classes (``learner``) carries its class's short name under
    ``"type"``, so ``from_dict`` rebuilds the same class."""
    out = {}
    types = field_types(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, np.ndarray | jax.Array):
            value = np.asarray(value).tolist()
        elif dataclasses.is_dataclass(value):
            nested = as_dict(value)
            if len(config_choices(types[f.name])) > 1:
                nested = {"type": short_name(type(value)), **nested}
            value = nested
        out[f.name] = value
    return out


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def from_dict(config_cls: type, data: dict[str, Any]) -> Any:
    """The ``config_cls`` config whose ``as_dict`` is ``data`` (also as read back from JSON:
    lists become tuples, nested dicts nested configs). ``ValueError`` for an unknown field.
    A field that ``data`` lacks takes the class's ``ADDED_FIELDS`` value (the behaviour of runs
    stored before the field existed; ``Presets``), else its default."""
    types = field_types(config_cls)
    values = dict(getattr(config_cls, "ADDED_FIELDS", {}))
    for name, value in data.items():
        if name not in types:
            raise ValueError(f"unknown field {name!r} for {config_cls.__name__}")
        choices = config_choices(types[name])
        if choices and isinstance(value, dict):
            value = dict(value)
            by_name = {short_name(c): c for c in choices}
            tag = value.pop("type", None) if len(choices) > 1 else None
            if len(choices) > 1 and tag not in by_name:
                raise ValueError(f"{name}: type={tag!r} is invalid: allowed one of "
                                 f"{', '.join(by_name)}")
            value = from_dict(by_name[tag] if tag else choices[0], value)
        values[name] = _tuples(value)
    return config_cls(**values)


def field_docs(config_cls: type) -> dict[str, str]:
    """Each field's documentation, one line: the first sentence of its entry in the
    ``Attributes:`` section of the class's docstring, or of the nearest base class's that
    documents it. An entry starts a line or follows a sentence (``a: text. b: text``); several
    fields may share one (``a, b: text`` or ``a / b: text``). A field documented nowhere maps
    to ``""`` (``tests/test_docs.py`` requires none)."""
    names = [f.name for f in dataclasses.fields(config_cls)]
    found: dict[str, str] = {}
    for cls in type.mro(config_cls):
        for name, text in _attributes(cls.__dict__.get("__doc__") or "", names).items():
            found.setdefault(name, text)
    return {name: _first_sentence(found.get(name, "")) for name in names}


def _attributes(doc: str, names: list[str]) -> dict[str, str]:
    """``{field: text}`` from a docstring's ``Attributes:`` section (Google style)."""
    lines = doc.expandtabs().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Attributes:"]
    if not starts:
        return {}
    section, indent = [], None
    for line in lines[starts[0] + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            break  # the section ended
        section.append(line.strip())
    text = " ".join(section)
    field = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    marker = re.compile(rf"(?:^|(?<=[.;] ))((?:{field})(?:(?:, | / )(?:{field}))*): ")
    found = list(marker.finditer(text))
    entries: dict[str, str] = {}
    for match, after in zip(found, found[1:] + [None], strict=True):
        body = text[match.end():after.start() if after else len(text)].strip()
        for name in re.split(", | / ", match.group(1)):
            entries.setdefault(name, body)
    return entries


def _first_sentence(text: str) -> str:
    """Up to the first full stop followed by a space, outside parentheses and not part of an
    ellipsis."""
    depth = 0
    for i, char in enumerate(text):
        depth += (char in "([") - (char in ")]")
        if (char == "." and depth == 0 and text[i + 1:i + 2] in (" ", "")
                and text[i - 1:i] != "."):
            return text[:i + 1]
    return text


def describe(config: Any) -> list[str]:
    """The resolved config, one line per field, nested configs' fields dotted as ``--set``
    names them: ``name = value  # the first sentence of the field's documentation``."""
    rows: list[tuple[str, str, str]] = []

    def walk(value: Any, prefix: str) -> None:
        docs = field_docs(type(value))
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if dataclasses.is_dataclass(item):
                rows.append((prefix + f.name, short_name(type(item)), docs[f.name]))
                walk(item, f"{prefix}{f.name}.")
            else:
                shown = np.asarray(item).tolist() if isinstance(item, np.ndarray | jax.Array) \
                    else item
                rows.append((prefix + f.name, repr(shown), docs[f.name]))

    walk(config, "")
    width = max(len(f"{name} = {value}") for name, value, _ in rows)
    return [f"{name} = {value}".ljust(width) + f"  # {doc}" if doc else f"{name} = {value}"
            for name, value, doc in rows]


def update(config: Any, **changes: Any) -> Any:
    """``config`` with ``changes``, where a nested config given as a dict *merges* into the
    current one, as ``--set model.num_members=5`` does: ``update(mbpo_config,
    model={"num_members": 5})`` keeps every other field of the preset's model (its
    ``batch_size=32`` on Pendulum-v1), while ``config.replace(model=EnsembleConfig(num_members=5))``
    replaces the whole nested config with that class's defaults. Dicts merge at any depth; a
    config object, as with ``replace``, replaces. ``ValueError`` names an unknown field, a dict
    for a field that holds no config, and a dict for a nested config that is ``None`` (give an
    object: there is nothing to merge into)."""
    return _update(config, changes, "")


def _update(config: Any, changes: Mapping[str, Any], prefix: str) -> Any:
    types = field_types(type(config))
    values = {}
    for name, value in changes.items():
        if name not in types:
            raise ValueError(f"unknown field {prefix + name!r}: {type(config).__name__} has no "
                             f"such field; its fields are: {', '.join(sorted(types))}")
        if isinstance(value, Mapping):
            current = getattr(config, name)
            if not config_choices(types[name]):
                raise ValueError(f"{prefix}{name}={dict(value)!r} is invalid: {name} holds no "
                                 "config to merge into")
            if current is None:
                raise ValueError(f"{prefix}{name}={dict(value)!r} is invalid: {name} is None, "
                                 "nothing to merge into (give a config object)")
            value = _update(current, value, f"{prefix}{name}.")
        values[name] = value
    try:
        return config.replace(**values)
    except ValueError as err:  # name the field as given: model.num_members=0 ...
        if prefix and str(err).split("=")[0] in types:
            raise ValueError(f"{prefix}{err}") from None
        raise
