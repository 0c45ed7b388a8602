"""Environments with the gymnax interface, and ``make(name)`` over them and gymnax's registry.

The library's own environments (``DynaMaze``, ``BlockingMaze``, ``ShortcutMaze``,
``FourRoomObjects`` and its 4 x 5 test layout ``FourRoomObjects-small``, the goal-conditioned
``PointMaze-{Open,UMaze,FourRooms}``, ``FourRooms-goal`` and ``NoisyPendulum-v1``, Pendulum with
Gaussian noise on each next angular velocity) come first;
any other name is passed to ``gymnax.make``. Tabular environments additionally expose
``num_states`` and ``obs_to_index(obs)`` (used by the tabular algorithms).
"""

from __future__ import annotations

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


BRAX_PREFIX = "brax-"
BRAX_TASKS = ("inverted_pendulum", "hopper", "halfcheetah", "walker2d", "ant")


def names() -> list[str]:
    """Every environment name ``make`` accepts (Brax's need the optional ``brax``)."""
    return (list(OWN_ENVS) + [n for n in gymnax.registered_envs if n not in OWN_ENVS]
            + [BRAX_PREFIX + t for t in BRAX_TASKS])


def check_name(name: str) -> None:
    """``ValueError`` for a name ``make`` does not accept; builds nothing (a config checks its
    env with it, since JAX reconstructs configs far more often than training is built). A
    ``brax-TASK`` name passes: Brax's own registry is read when the env is built."""
    if not (name in OWN_ENVS or name in gymnax.registered_envs
            or (name.startswith(BRAX_PREFIX) and len(name) > len(BRAX_PREFIX))):
        raise ValueError(f"unknown env {name!r}; known envs: {', '.join(names())}")


def make(name: str) -> tuple[Any, Any]:
    """``(env, default_params)`` for a library, gymnax or ``brax-TASK`` environment name."""
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
           "ShortcutMaze", "check_name", "make", "names"]
