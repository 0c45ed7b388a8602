"""Off-policy learners behind one interface (``purembrl.learners.base``), and their registry.

One module per learner: ``sac`` (Haarnoja et al. 2018), ``dqn`` (Mnih et al. 2015, double-Q),
``naf`` (Gu et al. 2016); ``normalize`` wraps any of them with running observation
normalisation. ``make(config, env_spec)`` builds the learner a config type is registered for:
adding a learner is one module with its ``Config`` and ``make_*`` plus one ``REGISTRY`` line.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

from purembrl.learners.base import (
    ActFn,
    CriticTargets,
    InitFn,
    Learner,
    UpdateFn,
    linear_epsilon,
)
from purembrl.learners.dqn import DQNConfig, DQNState, make_dqn
from purembrl.learners.naf import NAFConfig, NAFState, make_naf
from purembrl.learners.normalize import (
    NormalizedState,
    normalize_observations,
    normalized,
    observation_stats_update,
)
from purembrl.learners.sac import (
    SACConfig,
    SACNets,
    SACState,
    make_sac,
    sac_nets,
    squashed_gaussian,
)


class Entry(NamedTuple):
    """A registered learner: ``build(config, env_spec) -> Learner`` and its action space."""

    build: Callable[[Any, Any], Learner]
    discrete: bool


REGISTRY: dict[type, Entry] = {
    SACConfig: Entry(lambda c, s: make_sac(c, s.obs_dim, s.action_low, s.action_high), False),
    DQNConfig: Entry(lambda c, s: make_dqn(c, s.obs_dim, s.num_actions), True),
    NAFConfig: Entry(lambda c, s: make_naf(c, s.obs_dim, s.action_low, s.action_high), False),
}


# The type of an algorithm's ``learner`` field: any registered learner's config (the command
# line parses ``--set learner=NAME`` against its members).
LearnerConfig = functools.reduce(operator.or_, REGISTRY)  # SACConfig | DQNConfig | ...

# The learner an algorithm uses when its config names none: by the env's action space.
DEFAULTS: dict[bool, type] = {False: SACConfig, True: DQNConfig}


def default_config(env_spec) -> Any:
    """The default learner's config for an ``interact.EnvSpec``: ``DEFAULTS[discrete]()``."""
    return DEFAULTS[env_spec.discrete]()


def check_config(name: str, config: Any) -> None:
    """``ValueError`` unless ``config`` is ``None`` (the default learner) or the config of a
    registered learner: an algorithm's config calls it at construction for its ``learner``
    field (a learner registered later is checked again by ``make``)."""
    if config is not None and type(config) not in REGISTRY:
        raise ValueError(f"{name}={type(config).__name__}(...) is invalid: no learner is "
                         f"registered for it; registered: "
                         f"{', '.join(c.__name__ for c in REGISTRY)}")


def make(config: Any, env_spec, normalize_obs: bool = False) -> Learner:
    """The learner registered for ``type(config)``, for an ``interact.EnvSpec`` (``config``
    ``None``: ``default_config(env_spec)``); with ``normalize_obs``, wrapped in
    ``normalize_observations``. ``ValueError`` if the learner's action space is not the env's."""
    if config is None:
        config = default_config(env_spec)
    if type(config) not in REGISTRY:
        raise ValueError(f"no learner is registered for {type(config).__name__}; registered: "
                         f"{', '.join(c.__name__ for c in REGISTRY)}")
    entry = REGISTRY[type(config)]
    if entry.discrete != env_spec.discrete:
        kind = "discrete" if env_spec.discrete else "continuous"
        fits = ", ".join(c.__name__ for c, e in REGISTRY.items()
                         if e.discrete == env_spec.discrete)
        raise ValueError(f"learner={type(config).__name__} is invalid for this env: its "
                         f"actions are {kind} (allowed: {fits})")
    learner = entry.build(config, env_spec)
    return normalize_observations(learner, env_spec.obs_dim) if normalize_obs else learner


def policy(learner: Learner, state: Any):
    """The trained deterministic policy of ``learner`` in ``state``, as a pure function
    ``(key, obs [B, d]) -> action``."""
    return lambda key, obs: learner.act(state, key, obs, explore=False)


__all__ = [
    "DEFAULTS", "REGISTRY", "ActFn", "CriticTargets", "DQNConfig", "DQNState", "Entry",
    "InitFn", "Learner", "LearnerConfig", "NAFConfig", "NAFState", "NormalizedState",
    "SACConfig", "SACNets", "SACState", "UpdateFn", "default_config", "linear_epsilon", "make",
    "make_dqn", "make_naf", "make_sac", "normalize_observations", "normalized",
    "observation_stats_update", "policy", "sac_nets", "squashed_gaussian",
]
