"""Off-policy learners behind one interface (``purembrl.learners.base``), and their registry.

One module per learner: ``sac`` (Haarnoja et al. 2018), ``dqn`` (Mnih et al. 2015, double-Q),
``naf`` (Gu et al. 2016); ``normalize`` wraps any of them with running observation
normalisation. ``make(config, env_spec)`` builds the learner a config type is registered for:
adding a learner is one module with its ``Config`` and ``make_*`` plus one ``REGISTRY`` line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from purembrl.config import check_choice
from purembrl.learners.base import ActFn, InitFn, Learner, UpdateFn, linear_epsilon
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


def make(config: Any, env_spec, normalize_obs: bool = False) -> Learner:
    """The learner registered for ``type(config)``, for an ``interact.EnvSpec``; with
    ``normalize_obs``, wrapped in ``normalize_observations``. ``ValueError`` if the learner's
    action space is not the env's."""
    if type(config) not in REGISTRY:
        raise ValueError(f"no learner is registered for {type(config).__name__}; registered: "
                         f"{', '.join(c.__name__ for c in REGISTRY)}")
    entry = REGISTRY[type(config)]
    if entry.discrete != env_spec.discrete:
        kind = "discrete" if env_spec.discrete else "continuous"
        raise ValueError(f"{type(config).__name__} is invalid for this env: its actions are "
                         f"{kind}")
    learner = entry.build(config, env_spec)
    return normalize_observations(learner, env_spec.obs_dim) if normalize_obs else learner


def for_env(kind: str, sac: SACConfig | None, dqn: DQNConfig | None, env_spec,
            normalize_obs: bool = False) -> Learner:
    """``make`` of the config that ``kind`` (``"sac"`` or ``"dqn"``) names."""
    return make(sac if kind == "sac" else dqn, env_spec, normalize_obs)


def resolve_learner(config, discrete: bool) -> None:
    """For a config with ``env``, ``learner``, ``sac``, ``dqn`` fields (in ``__post_init__``):
    ``learner="auto"`` becomes SAC for continuous actions and DQN for discrete ones, a mismatch
    is a ``ValueError``, and the chosen learner's missing config gets its defaults."""
    check_choice("learner", config.learner, ("auto", "sac", "dqn"))
    if config.learner == "auto":
        object.__setattr__(config, "learner", "dqn" if discrete else "sac")
    if (config.learner == "dqn") != discrete:
        kind = "discrete" if discrete else "continuous"
        raise ValueError(f"learner={config.learner!r} is invalid for env={config.env!r}: its "
                         f"actions are {kind} (allowed: {'dqn' if discrete else 'sac'} or "
                         "'auto')")
    if config.learner == "sac" and config.sac is None:
        object.__setattr__(config, "sac", SACConfig())
    if config.learner == "dqn" and config.dqn is None:
        object.__setattr__(config, "dqn", DQNConfig())


__all__ = [
    "REGISTRY", "ActFn", "DQNConfig", "DQNState", "Entry", "InitFn", "Learner", "NAFConfig",
    "NAFState", "NormalizedState", "SACConfig", "SACNets", "SACState", "UpdateFn", "for_env",
    "linear_epsilon", "make", "make_dqn", "make_naf", "make_sac", "normalize_observations",
    "normalized", "observation_stats_update", "resolve_learner", "sac_nets", "squashed_gaussian",
]
