"""Environments with the gymnax interface, and ``make(name)`` over them and gymnax's registry.

The library's own environments (``DynaMaze``, ``BlockingMaze``, ``ShortcutMaze``,
``FourRoomObjects`` and its 4 x 5 test layout ``FourRoomObjects-small``, the goal-conditioned
``PointMaze-{Open,UMaze,FourRooms}``, ``FourRooms-goal`` and ``NoisyPendulum-v1``, Pendulum with
Gaussian noise on each next angular velocity) come first;
any other name is passed to ``gymnax.make``. Tabular environments additionally expose
``num_states`` and ``obs_to_index(obs)`` (used by the tabular algorithms).

A user's own environment (any class with gymnax's interface: ``reset``, ``step``,
``action_space``, ``observation_space``, ``default_params``) joins with
``register(name, make_fn)``; any gymnasium environment is ``gymnasium:ID`` (it steps on the
host: ``purembrl.envs.host``); every algorithm and command then takes the name like a built-in
one (from the command line: ``--import MODULE`` runs the module that registers it).
"""

from __future__ import annotations

import purembrl._deferred_imports  # noqa: F401  (first: defers gymnax's plotting imports)

# isort: split
from collections.abc import Callable
from typing import Any

import gymnax

from purembrl.envs.dyna_maze import BlockingMaze, DynaMaze, GridMaze, ShortcutMaze
from purembrl.envs.four_room_objects import SMALL_LAYOUT, FourRoomObjects
from purembrl.envs.goal_four_rooms import GoalFourRooms
from purembrl.envs.noisy_pendulum import NoisyPendulum
from purembrl.envs.point_maze import PointMaze

OWN_ENVS: dict[str, Callable[[], Any]] = {
    "DynaMaze": DynaMaze,
    "BlockingMaze": BlockingMaze,
    "ShortcutMaze": ShortcutMaze,
    "FourRoomObjects": FourRoomObjects,
    "FourRoomObjects-small": lambda: FourRoomObjects(SMALL_LAYOUT),
    "PointMaze-Open": lambda: PointMaze("Open"),
    "PointMaze-UMaze": lambda: PointMaze("UMaze"),
    "PointMaze-FourRooms": lambda: PointMaze("FourRooms"),
    "FourRooms-goal": GoalFourRooms,
    "NoisyPendulum-v1": NoisyPendulum,
}


_REGISTERED: dict[str, Callable[[], Any]] = {}

BRAX_PREFIX = "brax-"
BRAX_TASKS = ("inverted_pendulum", "hopper", "halfcheetah", "walker2d", "ant")
GYMNASIUM_PREFIX = "gymnasium:"


def names() -> list[str]:
    """Every environment name ``make`` accepts (Brax's need the optional ``brax``), except
    ``gymnasium:ID``, which takes any id of gymnasium's registry."""
    return (list(OWN_ENVS) + [n for n in gymnax.registered_envs if n not in OWN_ENVS]
            + [BRAX_PREFIX + t for t in BRAX_TASKS] + list(_REGISTERED))


def register(name: str, make_fn: Callable[[], Any], *, overwrite: bool = False) -> None:
    """Make ``make_fn()`` known as environment ``name`` to ``make`` and so to every algorithm
    and command. ``make_fn`` takes no arguments and returns a gymnax-style environment (its
    ``default_params`` are used) or an ``(env, params)`` pair, so a variant of an existing
    environment is one line: ``register("Pendulum-heavy", lambda: (env, params.replace(
    m=2.0)))``. Nothing is built here (``make`` calls ``make_fn`` each time).

    ``ValueError`` for a name that is empty or not a string, a ``make_fn`` that is not
    callable, or a name taken by a library, gymnax or Brax environment (always) or by another
    registration (unless ``overwrite``). A run stores the name: loading it later needs the
    same registration first."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"name={name!r} is invalid: allowed a non-empty string without "
                         "surrounding spaces")
    if not callable(make_fn):
        raise ValueError(f"make_fn={make_fn!r} is invalid: allowed a function of no arguments "
                         "returning an env or (env, params)")
    if (name in OWN_ENVS or name in gymnax.registered_envs or name.startswith(BRAX_PREFIX)
            or name.startswith(GYMNASIUM_PREFIX)):
        raise ValueError(f"name={name!r} is taken by a built-in environment")
    if name in _REGISTERED and _REGISTERED[name] is not make_fn and not overwrite:
        raise ValueError(f"name={name!r} is already registered (overwrite=True replaces it)")
    _REGISTERED[name] = make_fn


def check_name(name: str) -> None:
    """``ValueError`` for a name ``make`` does not accept; builds nothing (a config checks its
    env with it, since JAX reconstructs configs far more often than training is built). A
    ``brax-TASK`` name passes: Brax's own registry is read when the env is built; a
    ``gymnasium:ID`` name is checked against gymnasium's registry."""
    if isinstance(name, str) and name.startswith(GYMNASIUM_PREFIX):
        from purembrl.envs import host

        return host.check_name(name)
    if not (name in OWN_ENVS or name in gymnax.registered_envs or name in _REGISTERED
            or (name.startswith(BRAX_PREFIX) and len(name) > len(BRAX_PREFIX))):
        raise ValueError(f"unknown env {name!r}; known envs: {', '.join(names())}")


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("+-").isdigit() else float(text)


def parse_params(text: str) -> dict[str, int | float | tuple[int | float, ...]]:
    """``"max_speed=10,g=9.81"`` -> ``{"max_speed": 10, "g": 9.81}``: a config's
    ``env_params``, the environment parameters that replace its defaults (``""``: none). A
    vector parameter takes its numbers separated by ``;``: ``"object_weights=1;-1;0.5"`` ->
    ``{"object_weights": (1, -1, 0.5)}``. ``ValueError`` naming the malformed part; nothing is
    built (a config checks its text with it)."""
    out: dict[str, int | float | tuple[int | float, ...]] = {}
    if not isinstance(text, str):
        raise ValueError(f"env_params={text!r} is invalid: allowed a string NAME=VALUE,...")
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, value = (x.strip() for x in part.partition("="))
        if not eq or not name.isidentifier() or not value:
            raise ValueError(f"env_params={text!r} is invalid: {part!r} is not NAME=VALUE")
        try:
            number = (tuple(_number(v.strip()) for v in value.split(";")) if ";" in value
                      else _number(value))
        except ValueError:
            raise ValueError(f"env_params={text!r} is invalid: {name}={value!r} is not a "
                             "number (a vector: numbers separated by ';')") from None
        if name in out:
            raise ValueError(f"env_params={text!r} is invalid: {name} is given twice")
        out[name] = number
    return out


def format_params(values: dict[str, int | float | tuple[int | float, ...]]) -> str:
    """The inverse of ``parse_params``: ``{"g": 9.81, "w": (1, -1)}`` -> ``"g=9.81,w=1;-1"``."""
    return ",".join(f"{k}={_show(v)}" for k, v in values.items())


def _show(value) -> str:
    return ";".join(map(str, value)) if isinstance(value, tuple) else repr(value)


def with_params(name: str, params: Any, text: str) -> Any:
    """``params`` (an environment's parameter dataclass) with ``text``'s values in place of
    its own (``parse_params``; a vector parameter, such as ``FourRoomObjects``'
    ``object_weights``, takes as many numbers as it holds). ``ValueError`` for a name the
    parameters lack (listing theirs), a vector for a number or the wrong count of numbers, a
    non-integer for an integer parameter or a non-finite value."""
    import dataclasses
    import math

    import jax.numpy as jnp
    import numpy as np

    overrides = parse_params(text)
    if not overrides:
        return params
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"env_params: {name} has no parameter {key!r}; its parameters are "
                             f"{', '.join(sorted(fields))}")
        default = np.asarray(fields[key])
        if default.ndim != (1 if isinstance(value, tuple) else 0) or (
                isinstance(value, tuple) and len(value) != default.shape[0]):
            want = ("one number" if default.ndim == 0 else
                    f"a vector of {default.shape[0]} numbers separated by ';'"
                    if default.ndim == 1 else
                    f"an array of shape {default.shape}, which env_params cannot set")
            raise ValueError(f"env_params: {key}={_show(value)} is invalid: {name}'s {key} is "
                             f"{want}")
        if not all(math.isfinite(v) for v in np.ravel(value)):
            raise ValueError(f"env_params: {key}={_show(value)} is invalid: allowed "
                             f"{'finite numbers' if default.ndim else 'a finite number'}")
        if default.ndim == 1:
            if np.issubdtype(default.dtype, np.integer) and any(
                    float(v) != int(v) for v in value):
                raise ValueError(f"env_params: {key}={_show(value)} is invalid: {name}'s {key} "
                                 "holds integers")
            overrides[key] = jnp.asarray(value, default.dtype)
        elif np.issubdtype(default.dtype, np.integer) or isinstance(fields[key], bool):
            if float(value) != int(value):
                raise ValueError(f"env_params: {key}={_show(value)} is invalid: {name}'s {key} "
                                 "is an integer")
            overrides[key] = type(fields[key])(int(value)) if isinstance(
                fields[key], int | bool) else int(value)
        else:
            overrides[key] = float(value)
    return params.replace(**overrides)


def make(name: str, env_params: str = "") -> tuple[Any, Any]:
    """``(env, params)`` for a library, gymnax, ``brax-TASK`` or registered environment name:
    its default parameters, with ``env_params`` (``"NAME=VALUE,..."``, a config's field of
    that name; ``with_params``) in place of some.

    ``gymnasium:ID`` (any id in gymnasium's registry, MuJoCo's ``gymnasium:Hopper-v5`` among
    them) gives a ``host.HostEnvironment``: the environments step on the host, one per seed,
    and the rest of the run stays compiled (``purembrl.envs.host``). They take no
    ``env_params`` (make a variant with ``register(name, lambda: host.HostEnvironment(name,
    make_env))``)."""
    if name.startswith(GYMNASIUM_PREFIX):
        if env_params:
            raise ValueError(f"env_params={env_params!r} is invalid for {name!r}: gymnasium "
                             "environments take none (register a variant instead)")
        from purembrl.envs import host

        return host.make(name)
    env, params = _make(name)
    return env, with_params(name, params, env_params) if env_params else params


def _make(name: str) -> tuple[Any, Any]:
    if name in _REGISTERED:
        made = _REGISTERED[name]()
        env, params = made if isinstance(made, tuple) else (made, None)
        if not all(hasattr(env, a) for a in ("reset", "step", "action_space")):
            raise ValueError(f"env {name!r}: its make_fn returned {type(env).__name__}, not a "
                             "gymnax-style environment (reset, step, action_space)")
        return env, env.default_params if params is None else params
    if name in OWN_ENVS:
        env = OWN_ENVS[name]()
        return env, env.default_params
    if name in gymnax.registered_envs:
        try:
            return gymnax.make(name)
        except OSError as err:  # a download at construction (MNISTBandit-bsuite), offline
            reason = getattr(err, "reason", None) or err
            raise ValueError(f"env {name!r} could not be built: it fetches data over the "
                             f"network when it is made, and that failed ({reason})") from None
        except ImportError as err:
            raise ValueError(f"env {name!r} could not be built: it needs a package that is not "
                             f"installed ({err})") from None
    if name.startswith(BRAX_PREFIX):
        from purembrl.envs import brax_env  # imports brax only when asked for

        return brax_env.make(name)
    raise ValueError(f"unknown env {name!r}; known envs: {', '.join(names())}")


__all__ = ["BlockingMaze", "DynaMaze", "FourRoomObjects", "GridMaze", "NoisyPendulum", "PointMaze",
           "ShortcutMaze", "check_name", "make", "names", "parse_params", "register",
           "with_params"]
