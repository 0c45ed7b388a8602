"""Brax environments behind the gymnax interface the algorithms use.

``envs.make("brax-hopper")`` gives ``(env, params)`` where ``env`` is a gymnax ``Environment``
around ``brax.envs.get_environment("hopper")``: ``reset(key, params) -> (obs, state)`` and the
six-value ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated,
info)`` with gymnax's auto-reset and ``info["final_observation"]``, the true next observation
of the step that ended an episode. The split that MBPO's targets need is kept: ``terminated``
is Brax's own ``done`` (the pole fell, the hopper is unhealthy: no bootstrap), ``truncated`` is
the time limit ``params.max_steps_in_episode`` (1000, as in MBPO's MuJoCo tasks: bootstrap).
Actions are Brax's, a box in [-1, 1]^d.

Brax is an optional dependency (``pip install "purembrl[brax]"``); the tasks of the MBPO paper
are ``brax-inverted_pendulum``, ``brax-hopper``, ``brax-halfcheetah``, ``brax-walker2d`` and
``brax-ant``. The physics backend is Brax's default for each task, ``"generalized"`` for all
five in Brax 0.14 (Brax's own generalized-coordinate physics on MuJoCo model files, its contact
constraints solved by projected gradient); ``make(name, backend=...)`` picks another
(``"mjx"``: MuJoCo's own physics in JAX; ``"spring"``, ``"positional"``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from purembrl.envs import BRAX_PREFIX as PREFIX


@struct.dataclass
class EnvState(environment.EnvState):
    brax_state: Any
    time: jax.Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class BraxEnv(environment.Environment):
    """A Brax task as a gymnax ``Environment`` (see the module docstring)."""

    def __init__(self, task: str, backend: str | None = None):
        try:
            from brax import envs as brax_envs
        except ImportError:
            raise ValueError(f"env {PREFIX}{task!r} needs brax, an optional dependency: "
                             "pip install 'purembrl[brax]'") from None
        if task not in brax_envs._envs:
            raise ValueError(f"unknown Brax task {task!r}; known: "
                             f"{', '.join(sorted(brax_envs._envs))}")
        kwargs = {} if backend is None else {"backend": backend}
        self.task = task
        self.brax_env = brax_envs.get_environment(task, **kwargs)
        self.obs_size = int(self.brax_env.observation_size)
        self.action_size = int(self.brax_env.action_size)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams):
        brax_state = self.brax_env.reset(key)
        state = EnvState(brax_state=brax_state, time=jnp.zeros((), jnp.int32))
        return brax_state.obs.astype(jnp.float32), state

    def step_env(self, key: jax.Array, state: EnvState, action, params: EnvParams):
        action = jnp.clip(jnp.asarray(action, jnp.float32).reshape(self.action_size), -1.0, 1.0)
        brax_state = self.brax_env.step(state.brax_state, action)
        state = EnvState(brax_state=brax_state, time=state.time + 1)
        terminated = jnp.asarray(brax_state.done) > 0.5
        return (brax_state.obs.astype(jnp.float32), state,
                jnp.asarray(brax_state.reward, jnp.float32), terminated, {})

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.asarray(state.brax_state.done) > 0.5

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return state.brax_state.obs.astype(jnp.float32)

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.task}"

    @property
    def num_actions(self) -> int:
        return self.action_size

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.action_size,), jnp.float32)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_size,), jnp.float32)


def make(name: str, backend: str | None = None) -> tuple[BraxEnv, EnvParams]:
    """``(env, params)`` for ``"brax-TASK"``."""
    env = BraxEnv(name[len(PREFIX):], backend)
    return env, env.default_params
