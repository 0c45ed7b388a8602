"""Environments that step on the host: gymnasium's (native MuJoCo, a user's simulator) behind
the gymnax interface every algorithm uses.

``envs.make("gymnasium:Hopper-v5")`` gives ``(env, params)`` where ``env`` is a
``HostEnvironment``: its ``reset`` and ``step`` leave the compiled program through
``jax.experimental.io_callback`` and step Python objects with the ``HostEnv`` interface
(``GymnasiumEnv`` adapts any gymnasium environment). Everything else of a training run (the
transition into the replay, the model fit and rollouts, the learner's updates, the next action)
stays inside the one compiled, seed-vmapped program, so the algorithms are written once and
seeds, chunks, progress, metrics, plots and checkpoints work as for any gymnax env. This is the
role Sebulba's actor threads play in Stoix and mbrl-lib's Python loop plays in mbrl-lib, with
no per-step dispatch of a compiled function: the program calls out, not the other way round.

**Batching.** Under ``vmap`` (seeds, swept points, evaluation episodes) a reset or step is one
host call for the whole batch (``jax.custom_batching.custom_vmap``), which steps one
environment per batch element in turn: a step of 8 seeds is one callback of 8 env steps.

**Where the environments live.** In pools on the host, one per (env name, role, batch shape),
made at the first call of that shape: the training environments (gymnax's auto-reset: a step
that ends an episode returns the next episode's first observation and the true last one as
``info["final_observation"]``), and separate copies for evaluation
(``evaluation_env()``, which ``interact.evaluate`` uses), whose ended episodes are not stepped
again (their later steps return reward 0, as ``evaluate`` ignores them), so evaluation never
disturbs a training episode and never pays for steps it discards.

**Seeds.** Every reset is seeded from the JAX key of that reset (``seed_of``), the auto-resets
included: the run's key fixes every episode's start, so the same key gives the same run as far
as the environment is deterministic given its seed (MuJoCo's are).

**Resume.** An environment's state lives outside the carry and is not saved. The carry holds
``HostState(token, tick)``, the pool's token and the environment's step count; a step whose
pair does not match its environment (a run resumed from a checkpoint, in a new process or in
this one) restarts the episode first: the environment is reset (seeded from the step's key)
and then stepped with the action. The transition is a true one, from the reset observation
(``info["start_observation"]``), and ``info["restarted"]`` tells a replay that stores episode
ends to close the episode the checkpoint cut (``interact.step_into``). So on resume the
learner, model, buffers and keys continue exactly; the episodes in progress restart.

Sharding: the callback runs on the host of the process, so seeds sharded over several devices
are gathered for it; host environments are for the sample-efficient setting of a few
environments per process, where that costs nothing measurable.
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces
from jax.custom_batching import custom_vmap
from jax.experimental import io_callback

PREFIX = "gymnasium:"


class HostEnv(Protocol):
    """One environment stepping outside JAX, seeded through JAX keys.

    Attributes:
      observation_space: a flat gymnasium ``Box``. action_space: a gymnasium ``Box`` or
        ``Discrete``. max_episode_steps: the time limit at which ``step`` truncates.
    """

    observation_space: Any
    action_space: Any
    max_episode_steps: int

    def reset(self, key: np.ndarray) -> np.ndarray:
        """A new episode's first observation; ``key``: the JAX key's data (``uint32[2]``)."""

    def step(self, action: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """``(next_obs, reward, terminated, truncated)`` of one step, without auto-reset."""


def seed_of(key: np.ndarray) -> int:
    """A gymnasium seed (a 64-bit int) from a JAX key's data, ``uint32[2]``."""
    key = np.asarray(key, np.uint32).reshape(-1)
    return int(key[0]) << 32 | int(key[1])


class GymnasiumEnv:
    """A gymnasium environment as a ``HostEnv``: each reset seeds it from the JAX key
    (``seed_of``); the time limit is its ``spec.max_episode_steps`` (``ValueError`` without
    one: evaluation needs a bound on an episode's length)."""

    def __init__(self, env, name: str = ""):
        limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
        if not limit:
            raise ValueError(f"env {name or env!r} has no time limit: make it with "
                             "gymnasium.make(..., max_episode_steps=N)")
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.max_episode_steps = int(limit)

    def reset(self, key):
        return self.env.reset(seed=seed_of(key))[0]

    def step(self, action, key):
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return obs, float(reward), bool(terminated), bool(truncated)

    def close(self):
        self.env.close()


class GymnaxOnHost:
    """A gymnax environment stepped on the host as a ``HostEnv`` with the keys it is given:
    through the host path it makes the same transitions as inside the program (the test of the
    host path, and its overhead in ``benchmarks/host_overhead.py``)."""

    def __init__(self, env, params):
        self.params = params
        with jax.ensure_compile_time_eval():
            self.observation_space = _to_gymnasium(env.observation_space(params))
            self.action_space = _to_gymnasium(env.action_space(params))
        self.max_episode_steps = int(params.max_steps_in_episode)
        wrap = jax.random.wrap_key_data
        self._reset = jax.jit(lambda k: env.reset_env(wrap(k), params))

        def step(k, state, action):
            obs, state, reward, terminated, _ = env.step_env(wrap(k), state, action, params)
            return obs, state, reward, terminated, env.is_truncated(state, params)

        self._step = jax.jit(step)
        self._state = None

    def reset(self, key):
        obs, self._state = self._reset(key)
        return np.asarray(obs)

    def step(self, action, key):
        obs, self._state, reward, terminated, truncated = self._step(key, self._state, action)
        return np.asarray(obs), float(reward), bool(terminated), bool(truncated)


def _to_gymnasium(space):
    import gymnasium

    if isinstance(space, spaces.Discrete):
        return gymnasium.spaces.Discrete(int(space.n))
    ones = np.ones(space.shape, np.float32)
    return gymnasium.spaces.Box(np.asarray(space.low, np.float32) * ones,
                                np.asarray(space.high, np.float32) * ones)


@struct.dataclass
class HostState:
    """The carry's handle on a host environment: its pool's ``token`` and its ``tick``, the
    steps taken since its pool made it (the resume check of the module docstring)."""

    token: jax.Array
    tick: jax.Array


@struct.dataclass
class HostParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class _Pool:
    """The host environments of one (name, role, batch shape)."""

    def __init__(self, make_env: Callable[[], HostEnv], size: int, evaluation: bool):
        self.envs = [make_env() for _ in range(size)]
        self.token = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        self.ticks = np.zeros(size, np.int64)
        self.ended = np.zeros(size, bool)  # evaluation: the episode is over
        self.last = [None] * size  # each env's latest observation (where its next step starts)
        self.evaluation = evaluation
        self.lock = threading.Lock()


_POOLS: dict[tuple, _Pool] = {}
_POOLS_LOCK = threading.Lock()


def _as_words(x: jax.Array) -> jax.Array:
    """A 32-bit array as uint32 words, bit for bit."""
    return jax.lax.bitcast_convert_type(x, jnp.uint32)


def _float(words: jax.Array) -> jax.Array:
    return jax.lax.bitcast_convert_type(words, jnp.float32)


def _int(words: jax.Array) -> jax.Array:
    return jax.lax.bitcast_convert_type(words, jnp.int32)


def _batched(host_fn: Callable, width: int):
    """``host_fn`` through one ``io_callback`` per call whatever the ``vmap``s around it. It
    takes and returns one uint32 array, words on the last axis and every batch axis in front
    (``width`` words out): each argument or result of a callback costs a
    transfer (about 30 us on this CPU), so everything travels packed. The callback loops over
    the flattened batch."""

    @custom_vmap
    def call(words):
        shape = jax.ShapeDtypeStruct((*words.shape[:-1], width), jnp.uint32)
        return io_callback(host_fn, shape, words)

    @call.def_vmap
    def rule(axis_size, in_batched, words):
        if not in_batched[0]:
            words = jnp.broadcast_to(words, (axis_size, *words.shape))
        return call(words), True

    return call


class HostEnvironment(environment.Environment):
    """A ``HostEnv`` (made by ``make_env()``, one per seed) as a gymnax ``Environment`` whose
    ``reset`` and ``step`` call the host (the module docstring). ``name``: the pools' name;
    ``evaluation``: the copies ``evaluation_env()`` gives."""

    def __init__(self, name: str, make_env: Callable[[], HostEnv], evaluation: bool = False):
        probe = make_env()
        self._name, self.make_env, self.evaluation = name, make_env, evaluation
        self._evaluation_copy = None
        obs_space, act_space = probe.observation_space, probe.action_space
        if len(obs_space.shape) != 1:
            raise ValueError(f"env {name!r}: observations of shape {obs_space.shape} are not "
                             "supported (flat vectors only)")
        self.obs_dim = int(obs_space.shape[0])
        self.max_steps = int(probe.max_episode_steps)
        if hasattr(act_space, "n"):
            self._action_space = spaces.Discrete(int(act_space.n))
            self.action_shape, self.action_dtype = (), jnp.int32
        else:
            low = np.asarray(act_space.low, np.float32)
            high = np.asarray(act_space.high, np.float32)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError(f"env {name!r}: its action box is unbounded; allowed a "
                                 "bounded box or a discrete space")
            self._action_space = spaces.Box(low, high, tuple(act_space.shape), jnp.float32)
            self.action_shape, self.action_dtype = tuple(act_space.shape), jnp.float32
        self._obs_space = spaces.Box(-jnp.inf, jnp.inf, (self.obs_dim,), jnp.float32)
        getattr(probe, "close", lambda: None)()
        self._bind()

    def _bind(self):
        self._reset_call = _batched(self._reset_host, self.obs_dim + 2)
        self._step_call = _batched(self._step_host, 3 * self.obs_dim + 6)

    # -- the gymnax interface ------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def num_actions(self) -> int:
        return int(getattr(self._action_space, "n", math.prod(self.action_shape)))

    @property
    def default_params(self) -> HostParams:
        return HostParams(max_steps_in_episode=self.max_steps)

    def observation_space(self, params=None):
        return self._obs_space

    def action_space(self, params=None):
        return self._action_space

    def evaluation_env(self) -> HostEnvironment:
        """Copies of this environment for evaluation (their own pools; ended episodes are not
        stepped again)."""
        if self.evaluation:
            return self
        if self._evaluation_copy is None:
            other = copy.copy(self)
            other.evaluation = True
            other._bind()  # its callbacks step the evaluation pools
            self._evaluation_copy = other
        return self._evaluation_copy

    def reset(self, key, params=None):
        out = self._reset_call(jax.random.key_data(key))
        d = self.obs_dim
        return _float(out[..., :d]), HostState(token=_int(out[..., d]), tick=_int(out[..., d + 1]))

    def step(self, key, state: HostState, action, params=None):
        key_step, key_reset = jax.random.split(key)
        action = jnp.asarray(action, self.action_dtype).reshape(*state.token.shape, -1)
        words = jnp.concatenate([_as_words(state.token)[..., None],
                                 _as_words(state.tick)[..., None], jax.random.key_data(key_step),
                                 jax.random.key_data(key_reset), _as_words(action)], axis=-1)
        out = self._step_call(words)
        d = self.obs_dim
        obs, final, start = (_float(out[..., i * d:(i + 1) * d]) for i in range(3))
        reward = _float(out[..., 3 * d])
        terminated, truncated, restarted = (out[..., 3 * d + i] != 0 for i in (1, 2, 3))
        info = {"final_observation": final, "terminated": terminated, "truncated": truncated,
                "restarted": restarted, "start_observation": start}
        state = HostState(token=_int(out[..., 3 * d + 4]), tick=_int(out[..., 3 * d + 5]))
        return obs, state, reward, terminated, truncated, info

    # -- the host side -------------------------------------------------------------------
    def _pool(self, batch: tuple) -> _Pool:
        key = (self._name, self.evaluation, batch)
        with _POOLS_LOCK:
            if key not in _POOLS:
                _POOLS[key] = _Pool(self.make_env, math.prod(batch), self.evaluation)
            return _POOLS[key]

    def _reset_host(self, keys):
        keys = np.asarray(keys)
        batch = keys.shape[:-1]
        pool = self._pool(batch)
        d = self.obs_dim
        out = np.zeros((math.prod(batch), d + 2), np.uint32)
        with pool.lock:
            for i, key in enumerate(keys.reshape(-1, keys.shape[-1])):
                obs = np.asarray(pool.envs[i].reset(key), np.float32).reshape(d)
                pool.ticks[i], pool.ended[i], pool.last[i] = 0, False, obs
                out[i, :d] = obs.view(np.uint32)
        out[:, d] = pool.token
        return out.reshape(*batch, d + 2)

    def _step_host(self, words):
        words = np.asarray(words)
        batch = words.shape[:-1]
        words = words.reshape(-1, words.shape[-1])
        pool = self._pool(batch)
        token, tick = words[:, 0].view(np.int32), words[:, 1].view(np.int32)
        key_step, key_reset = words[:, 2:4], words[:, 4:6]
        actions = words[:, 6:].view(np.int32 if self.action_shape == () else np.float32)
        d = self.obs_dim
        out = np.zeros((len(words), 3 * d + 6), np.uint32)
        floats = out.view(np.float32)
        with pool.lock:
            for i in range(len(words)):
                env = pool.envs[i]
                if token[i] != pool.token or tick[i] != pool.ticks[i] & 0x7FFFFFFF:
                    out[i, 3 * d + 3] = 1  # restarted
                    pool.ended[i] = False
                    pool.last[i] = np.asarray(env.reset(key_reset[i]), np.float32).reshape(d)
                floats[i, 2 * d:3 * d] = pool.last[i]  # where the step starts
                pool.ticks[i] += 1
                if pool.ended[i]:  # an evaluation episode that is over: not stepped again
                    floats[i, :d] = floats[i, d:2 * d] = pool.last[i]
                    out[i, 3 * d + 1:3 * d + 3] = 1
                    continue
                act = (int(actions[i, 0]) if self.action_shape == ()
                       else actions[i].reshape(self.action_shape))
                next_obs, reward, terminated, truncated = env.step(act, key_step[i])
                next_obs = np.asarray(next_obs, np.float32).reshape(d)
                floats[i, d:2 * d] = next_obs
                floats[i, 3 * d] = reward
                out[i, 3 * d + 1], out[i, 3 * d + 2] = bool(terminated), bool(truncated)
                if terminated or truncated:
                    if pool.evaluation:
                        pool.ended[i] = True
                    else:
                        next_obs = np.asarray(env.reset(key_reset[i]), np.float32).reshape(d)
                floats[i, :d] = pool.last[i] = next_obs
            out[:, 3 * d + 4] = pool.token
            out[:, 3 * d + 5] = pool.ticks & 0x7FFFFFFF
        return out.reshape(*batch, 3 * d + 6)


def check_name(name: str) -> None:
    """``ValueError`` unless ``name`` is ``gymnasium:ID`` for an ID in gymnasium's registry
    (nothing is built; gymnasium is imported)."""
    env_id = name[len(PREFIX):]
    try:
        import gymnasium
    except ImportError:
        raise ValueError(f"env {name!r} needs gymnasium: pip install 'purembrl[mujoco]'") from None
    if env_id not in gymnasium.registry:
        close = [n for n in gymnasium.registry if env_id.lower() in n.lower()][:8]
        raise ValueError(f"unknown gymnasium env {env_id!r}"
                         + (f"; did you mean {', '.join(PREFIX + c for c in close)}" if close
                            else ""))


def make(name: str) -> tuple[HostEnvironment, HostParams]:
    """``gymnasium:ID`` as ``(HostEnvironment, params)``, one ``gymnasium.make(ID)`` per
    seed. ``ValueError`` for an unknown ID or one whose dependencies are missing (MuJoCo's:
    ``pip install 'purembrl[mujoco]'``)."""
    check_name(name)
    import gymnasium

    env_id = name[len(PREFIX):]

    def make_env():
        try:
            return GymnasiumEnv(gymnasium.make(env_id), name)
        except gymnasium.error.DependencyNotInstalled as err:
            raise ValueError(f"env {name!r} could not be built: {err}") from None

    env = HostEnvironment(name, make_env)
    return env, env.default_params
