"""Acting in a gymnax environment: one step as a ``Transition``, random warm-up, evaluation.

Shared by the deep algorithms. ``step`` records the *true* next observation
(``info["final_observation"]``) and ``terminated`` apart from truncation, as the design asks;
the returned ``obs`` is the auto-reset one, to act from next.
"""

from __future__ import annotations

import purembrl._deferred_imports  # noqa: F401  (first: defers gymnax's plotting imports)

# isort: split
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from purembrl import buffer
from purembrl.types import Transition


class EnvSpec(NamedTuple):
    """What an algorithm needs to know of an environment (Python values, static)."""

    obs_dim: int
    discrete: bool
    num_actions: int  # discrete: number of actions; continuous: action dimension
    action_low: np.ndarray | None
    action_high: np.ndarray | None
    max_steps: int


def spec(env, env_params) -> EnvSpec:
    """The observation size, action space and episode limit of ``env``."""
    obs_shape = env.observation_space(env_params).shape
    if len(obs_shape) != 1:
        raise ValueError(f"{env.name}: observations of shape {obs_shape} are not supported "
                         "(flat vectors only)")
    space = env.action_space(env_params)
    max_steps = int(env_params.max_steps_in_episode)
    if isinstance(space, spaces.Discrete):
        return EnvSpec(obs_shape[0], True, int(space.n), None, None, max_steps)
    if isinstance(space, spaces.Box):
        low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape).reshape(-1)
        return EnvSpec(obs_shape[0], False, int(np.prod(space.shape)), low, high, max_steps)
    raise ValueError(f"{env.name}: action space {space} is not supported")


def example_transition(env_spec: EnvSpec, episode_end: bool = False) -> Transition:
    """A zero ``Transition`` with the shapes and dtypes this environment produces; with
    ``episode_end`` also the flag of the steps that end an episode (a replay buffer made from
    it stores the flag: ``step_into``)."""
    action = (jnp.zeros((), jnp.int32) if env_spec.discrete
              else jnp.zeros((env_spec.num_actions,), jnp.float32))
    return Transition(obs=jnp.zeros(env_spec.obs_dim), action=action, reward=jnp.zeros(()),
                      next_obs=jnp.zeros(env_spec.obs_dim), terminated=jnp.zeros((), bool),
                      episode_end=jnp.zeros((), bool) if episode_end else None)


class Stepped(NamedTuple):
    obs: jax.Array  # to act from next (auto-reset at episode ends)
    env_state: Any
    transition: Transition
    done: jax.Array  # terminated or truncated
    restarted: jax.Array | None = None  # host envs: the episode restarted first (a resume)


def step(env, env_params, key: jax.Array, env_state, obs: jax.Array, action) -> Stepped:
    """One environment step of one environment (vmap for several). A host environment
    (``purembrl.envs.host``) that restarted its episode first (on resume) reports the
    observation it really stepped from, which the transition then holds."""
    next_obs, env_state, reward, terminated, truncated, info = env.step(
        key, env_state, action, env_params)
    obs = info.get("start_observation", obs)
    transition = Transition(obs=obs.astype(jnp.float32), action=action,
                            reward=jnp.asarray(reward, jnp.float32),
                            next_obs=info["final_observation"].astype(jnp.float32),
                            terminated=jnp.asarray(terminated, bool))
    return Stepped(next_obs.astype(jnp.float32), env_state, transition, terminated | truncated,
                   info.get("restarted"))


def random_action(env, env_params, key: jax.Array):
    """One uniformly random action of ``env``'s action space (int32 for discrete spaces)."""
    action = env.action_space(env_params).sample(key)
    return action.astype(jnp.int32) if jnp.issubdtype(action.dtype, jnp.integer) else action


def step_into(env, env_params, key: jax.Array, env_state, obs: jax.Array, action,
              replay: buffer.BufferState) -> tuple[jax.Array, Any, buffer.BufferState]:
    """One step whose transition goes into ``replay``: ``(obs, env_state, replay)``. A replay
    made with room for ``episode_end`` (``example_transition``) also stores whether the step
    ended its episode (and, when a host environment restarted its episode on resume, marks the
    row before as the end of the episode the checkpoint cut)."""
    stepped = step(env, env_params, key, env_state, obs, action)
    transition = stepped.transition
    if replay.data.episode_end is not None:
        transition = transition.replace(episode_end=stepped.done)
        if stepped.restarted is not None:
            previous = (replay.insert - 1) % replay.capacity
            ends = replay.data.episode_end
            ends = ends.at[previous].set(ends[previous] | (stepped.restarted & (replay.size > 0)))
            replay = replay.replace(data=replay.data.replace(episode_end=ends))
    replay = buffer.add(replay, jax.tree.map(lambda x: x[None], transition))
    return stepped.obs, stepped.env_state, replay


def warmup(env, env_params, key: jax.Array, env_state, obs: jax.Array,
           replay: buffer.BufferState, num_steps: int):
    """``num_steps`` uniformly random steps into ``replay``: ``(obs, env_state, replay)``."""

    def body(carry, k):
        obs, env_state, replay = carry
        key_action, key_env = jax.random.split(k)
        action = random_action(env, env_params, key_action)
        return step_into(env, env_params, key_env, env_state, obs, action, replay), None

    (obs, env_state, replay), _ = jax.lax.scan(body, (obs, env_state, replay),
                                               jax.random.split(key, num_steps))
    return obs, env_state, replay


def evaluation_env(env):
    """The environment to evaluate on: ``env.evaluation_env()`` where it has one (host
    environments' separate copies, ``purembrl.envs.host``), else ``env`` itself."""
    make = getattr(env, "evaluation_env", None)
    return env if make is None else make()


def evaluate(env, env_params, policy: Callable[[jax.Array, jax.Array], jax.Array],
             key: jax.Array, num_episodes: int, max_steps: int) -> tuple[jax.Array, jax.Array]:
    """Mean undiscounted return and mean length of ``num_episodes`` fresh episodes.

    ``policy(key, obs [B, obs_dim]) -> action [B, ...]`` acts for all episodes at once; each
    episode counts rewards until its first termination or truncation (at most ``max_steps``).
    An environment with an ``evaluation_env()`` (host environments) is evaluated on what that
    returns: separate copies, so evaluation never disturbs the training episodes.
    """
    env = evaluation_env(env)
    key_reset, key_run = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key_reset, num_episodes), env_params)

    def body(carry, step_key):
        obs, env_state, alive, ret, length = carry
        key_policy, key_env = jax.random.split(step_key)
        action = policy(key_policy, obs)
        obs, env_state, reward, terminated, truncated, _ = jax.vmap(
            env.step, in_axes=(0, 0, 0, None))(jax.random.split(key_env, num_episodes),
                                                env_state, action, env_params)
        ret = ret + jnp.where(alive, reward, 0.0)
        length = length + alive
        alive = alive & ~(terminated | truncated)
        return (obs.astype(jnp.float32), env_state, alive, ret, length), None

    init = (obs.astype(jnp.float32), env_state, jnp.ones(num_episodes, bool),
            jnp.zeros(num_episodes), jnp.zeros(num_episodes, jnp.int32))
    (_, _, _, ret, length), _ = jax.lax.scan(body, init, jax.random.split(key_run, max_steps))
    return ret.mean(), length.mean()


def episode_return(env, env_params, act: Callable[[jax.Array, jax.Array], jax.Array],
                   key: jax.Array, num_episodes: int, max_steps: int) -> jax.Array:
    """Mean undiscounted return of ``num_episodes`` fresh episodes of ``act(key, obs) ->
    action`` (one unbatched observation), each run until it terminates, is truncated or reaches
    ``max_steps``: a while loop per episode, so short episodes stop early (the tabular
    algorithms' greedy evaluation). Evaluates on ``evaluation_env(env)``."""
    env = evaluation_env(env)

    def episode(key):
        key_reset, key_run = jax.random.split(key)
        obs, env_state = env.reset(key_reset, env_params)

        def body(x):
            obs, env_state, key, length, _, ret = x
            key, key_act, key_env = jax.random.split(key, 3)
            obs, env_state, r, term, trunc, _ = env.step(key_env, env_state, act(key_act, obs),
                                                        env_params)
            return obs, env_state, key, length + 1, term | trunc, ret + r

        init = (obs, env_state, key_run, jnp.zeros((), jnp.int32), jnp.zeros((), bool),
                jnp.zeros(()))
        *_, ret = jax.lax.while_loop(lambda x: ~x[4] & (x[3] < max_steps), body, init)
        return ret

    return jax.vmap(episode)(jax.random.split(key, num_episodes)).mean()
