"""The training loops of the model-based deep algorithms: two shapes, each shared by two files.

``make_model_loop``: the model is queried inside every learner update. ``make_rollout_loop``
(below): model rollouts branched from real states fill a buffer of imagined data that the
learner samples (MBPO, MBA). An algorithm file supplies its update rule and its settings.

Deep Dyna (expected targets over K sampled next states) and MBVE (value-expansion targets along
an imagined path) put the model *inside* the update rather than into a buffer of imagined data
(MBPO, MBA). Their loop is the same and lives here; each algorithm supplies only its update:

    initial_random_steps uniformly random real steps into the replay buffer
    every model_train_freq steps:  fit the ensemble on the replay buffer (purembrl.dynamics)
      every step:                  act, store the real transition, take updates_per_step (G)
                                   updates ``update(learner_state, replay, model_step, key)``
    every eval_every steps:        evaluate the deterministic policy

``model_step`` is the fitted ensemble as ``rollout.ModelStep`` (known reward / termination
functions plugged in where the config asks). The ``config`` needs ``initial_random_steps``,
``buffer_size``, ``model_train_freq``, ``eval_every``, ``eval_episodes``, ``updates_per_step``
and ``num_iterations``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, dynamics, interact, rollout
from purembrl.learners import Learner
from purembrl.loop import TrainLoop

Update = Callable[[Any, buffer.BufferState, Callable, jax.Array], tuple[Any, dict]]
Explore = Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]


def behaviour_policy(config, learner: Learner) -> Explore:
    """``(learner_state, key, obs [B, d], env_steps) -> action [B, ...]``: the learner's
    exploring ``act``, its ``step`` counted from the end of the ``initial_random_steps``
    warm-up (DQN's epsilon schedule; SAC and NAF sample their own noise). Real steps and model
    rollouts both act with it."""
    def explore(learner_state, key, obs, env_steps):
        return learner.act(learner_state, key, obs, True, env_steps - config.initial_random_steps)

    return explore


@struct.dataclass
class ModelLoopState:
    learner: Any
    model: dynamics.EnsembleState
    replay: buffer.BufferState
    obs: jax.Array
    env_state: Any
    env_steps: jax.Array
    key: jax.Array


def _start(config, env, env_params, learner: Learner, model_config, key):
    """Fresh learner and model, and ``initial_random_steps`` random steps into a new replay
    buffer: ``(learner_state, model, replay, obs, env_state, env_steps, key_run)``."""
    env_spec = interact.spec(env, env_params)
    key_learner, key_model, key_reset, key_warm, key_run = jax.random.split(key, 5)
    obs, env_state = env.reset(key_reset, env_params)
    obs, env_state, replay = interact.warmup(
        env, env_params, key_warm, env_state, obs.astype(jnp.float32),
        buffer.init(interact.example_transition(env_spec), config.buffer_size),
        config.initial_random_steps)
    model = dynamics.init(key_model, model_config, env_spec.obs_dim, env_spec.num_actions)
    return (learner.init(key_learner), model, replay, obs, env_state,
            jnp.full((), config.initial_random_steps, jnp.int32), key_run)


def _iteration(config, env, env_params, learner: Learner, model_block, extra_metrics=None):
    """One ``TrainLoop.step``: ``eval_every // model_train_freq`` model blocks, then an
    evaluation of the deterministic policy; block infos are averaged (flags: any)."""
    max_steps = interact.spec(env, env_params).max_steps

    def step(carry):
        key, key_blocks, key_eval = jax.random.split(carry.key, 3)
        blocks = config.eval_every // config.model_train_freq
        carry, info = jax.lax.scan(model_block, carry.replace(key=key),
                                   jax.random.split(key_blocks, blocks))
        policy = lambda k, obs: learner.act(carry.learner, k, obs, explore=False)
        eval_return, eval_length = interact.evaluate(env, env_params, policy, key_eval,
                                                     config.eval_episodes, max_steps)
        metrics = {"env_steps": carry.env_steps, "eval_return": eval_return,
                   "eval_length": eval_length, **(extra_metrics(carry) if extra_metrics else {}),
                   **{k: (v.any() if v.dtype == bool else v.mean()) for k, v in info.items()}}
        return carry, metrics

    return step


def make_model_loop(config, env, env_params, learner: Learner,
                    model_config: dynamics.EnsembleConfig, update: Update, *,
                    reward_fn=None, termination_fn=None,
                    deterministic_model: bool = False) -> TrainLoop:
    """The loop of the module docstring as a ``TrainLoop``; metrics per evaluation: ``env_steps``,
    ``eval_return``, ``eval_length``, ``model_val_mse`` (elites), ``model_nonfinite`` and the
    means of ``update``'s info. ``deterministic_model``: the model step takes a random elite's
    mean instead of sampling its Gaussian."""
    explore = behaviour_policy(config, learner)

    def init(key):
        learner_state, model, replay, obs, env_state, env_steps, key_run = _start(
            config, env, env_params, learner, model_config, key)
        return ModelLoopState(learner=learner_state, model=model, replay=replay, obs=obs,
                              env_state=env_state, env_steps=env_steps, key=key_run)

    def env_step(carry: ModelLoopState, key):
        """One real step and G updates that use the model."""
        key_act, key_env, key_update = jax.random.split(key, 3)
        action = explore(carry.learner, key_act, carry.obs[None], carry.env_steps)[0]
        obs, env_state, replay = interact.step_into(env, env_params, key_env, carry.env_state,
                                                    carry.obs, action, carry.replay)
        carry = carry.replace(replay=replay, obs=obs, env_state=env_state,
                              env_steps=carry.env_steps + 1)
        model_step = dynamics.make_model_step(carry.model, deterministic=deterministic_model,
                                              reward_fn=reward_fn, termination_fn=termination_fn)
        learner_state, info = jax.lax.scan(
            lambda state, k: update(state, carry.replay, model_step, k), carry.learner,
            jax.random.split(key_update, config.updates_per_step))
        return carry.replace(learner=learner_state), jax.tree.map(jnp.mean, info)

    def model_block(carry: ModelLoopState, key):
        key_fit, key_steps = jax.random.split(key)
        model, fit = dynamics.fit(carry.model, carry.replay, key_fit, model_config)
        carry = carry.replace(model=model)
        carry, info = jax.lax.scan(env_step, carry,
                                   jax.random.split(key_steps, config.model_train_freq))
        return carry, {"model_val_mse": fit["val_mse"][fit["elites"]].mean(),
                       "model_nonfinite": fit["nonfinite"], **jax.tree.map(jnp.mean, info)}

    step = _iteration(config, env, env_params, learner, model_block)
    return TrainLoop(init=init, step=step, num_iterations=config.num_iterations)


# --- loops that put imagined data into a buffer (MBPO, MBA) -------------------------------------

@struct.dataclass
class RolloutLoopState:
    learner: Any
    model: dynamics.EnsembleState
    env_buffer: buffer.BufferState
    model_buffer: buffer.BufferState
    obs: jax.Array
    env_state: Any
    env_steps: jax.Array
    key: jax.Array


Updates = Callable[[Any, buffer.BufferState, buffer.BufferState, jax.Array], tuple[Any, dict]]
Part = Callable[[RolloutLoopState, jax.Array], tuple[RolloutLoopState, dict]]


class RolloutLoopParts(NamedTuple):
    """The pieces ``make_rollout_loop`` is made of, each a pure function of the loop state: time
    them apart (``benchmarks/mbpo_profile.py``) or compose a loop of your own.

    Attributes:
      env, env_params, learner: what the loop steps and trains.
      init: ``key -> RolloutLoopState``: fresh learner and model, ``initial_random_steps``
        random steps in the env buffer, an empty model buffer.
      fit: ``(state, key) -> (state, info)``: refit the ensemble on the env buffer (``info``:
        ``model_val_mse``, ``model_epochs``, ``model_nonfinite``); the identity when the model
        is off or fixed.
      branch: ``(state, key) -> (state, stats)``: one batch of ``rollouts_per_step *
        rollout_freq`` branched rollouts into the model buffer.
      env_step: ``(state, key) -> (state, info)``: one real step and the learner's updates.
    """

    env: Any
    env_params: Any
    learner: Learner
    init: Callable[[jax.Array], RolloutLoopState]
    fit: Part
    branch: Part
    env_step: Part


def rollout_loop_parts(config, env, env_params, learner: Learner,
                       model_config: dynamics.EnsembleConfig, updates: Updates,
                       *, model_on: bool, model_buffer_size: int,
                       horizon: Callable[[jax.Array], jax.Array], max_horizon: int,
                       reward_fn=None, termination_fn=None,
                       model_step: rollout.ModelStep | None = None) -> RolloutLoopParts:
    """The parts of the loop of algorithms that branch model rollouts from real states into a
    buffer of imagined transitions (MBPO's Algorithm 2; Gu et al. 2016's imagination rollouts),
    which ``make_rollout_loop`` composes:

        initial_random_steps uniformly random real steps into the env buffer
        every model_train_freq steps:  fit the ensemble on the env buffer
          every rollout_freq steps:    branch rollouts_per_step * rollout_freq rollouts of
                                       length horizon(env_steps) <= max_horizon from real
                                       states with ``behaviour_policy`` into the model buffer
            every step:                act with ``behaviour_policy``, store the real transition,
                                       then ``updates(learner_state, env_buffer, model_buffer,
                                       key)``
        every eval_every steps:        evaluate the deterministic policy

    ``model_on=False`` skips fits and rollouts (the model-free baseline from the same code).
    ``model_step``: a fixed model to branch rollouts through instead of the fitted ensemble
    (``purembrl.envs.known.true_model_step``, the true dynamics: a diagnostic that takes the
    model's errors out of the picture); the ensemble is then never fitted.
    Rollouts run in chunks of at most ``config.rollout_chunk`` start states: every member of
    the ensemble sees every start, so one 100k-start batch would hold [members, 100k, width]
    activations per layer.

    The ``config`` needs ``initial_random_steps``, ``buffer_size``, ``model_train_freq``,
    ``rollout_freq``, ``rollouts_per_step``, ``rollout_chunk``, ``eval_every``,
    ``eval_episodes`` and ``num_iterations``.
    """
    def init(key):
        learner_state, model, env_buffer, obs, env_state, env_steps, key_run = _start(
            config, env, env_params, learner, model_config, key)
        model_buffer = buffer.init(jax.tree.map(lambda x: x[0], env_buffer.data),
                                   model_buffer_size if model_on else 1)
        return RolloutLoopState(learner=learner_state, model=model, env_buffer=env_buffer,
                                model_buffer=model_buffer, obs=obs, env_state=env_state,
                                env_steps=env_steps, key=key_run)

    explore = behaviour_policy(config, learner)
    branch = (_branch(config, explore, horizon, max_horizon, reward_fn, termination_fn,
                      model_step) if model_on else (lambda carry, key: (carry, {})))

    def fit(carry: RolloutLoopState, key):
        """Refit the ensemble on the env buffer (nothing when the model is off or fixed)."""
        if not model_on or model_step is not None:
            return carry, {}
        model, info = dynamics.fit(carry.model, carry.env_buffer, key, model_config)
        return carry.replace(model=model), {
            "model_val_mse": info["val_mse"][info["elites"]].mean(),
            "model_epochs": info["epochs"], "model_nonfinite": info["nonfinite"]}

    def env_step(carry: RolloutLoopState, key):
        """One real step and the learner's updates."""
        key_act, key_env, key_update = jax.random.split(key, 3)
        action = explore(carry.learner, key_act, carry.obs[None], carry.env_steps)[0]
        obs, env_state, env_buffer = interact.step_into(env, env_params, key_env, carry.env_state,
                                                        carry.obs, action, carry.env_buffer)
        carry = carry.replace(env_buffer=env_buffer, obs=obs, env_state=env_state,
                              env_steps=carry.env_steps + 1)
        learner_state, info = updates(carry.learner, carry.env_buffer, carry.model_buffer,
                                      key_update)
        return carry.replace(learner=learner_state), info

    return RolloutLoopParts(env=env, env_params=env_params, learner=learner, init=init, fit=fit,
                            branch=branch, env_step=env_step)


def _branch(config, explore: Explore, horizon: Callable[[jax.Array], jax.Array],
            max_horizon: int, reward_fn, termination_fn,
            model_step: rollout.ModelStep | None) -> Part:
    """``rollout_loop_parts``' ``branch``: ``rollouts_per_step * rollout_freq`` rollouts of
    ``horizon(env_steps)`` steps from start states drawn from the env buffer, through
    ``model_step`` (else the fitted ensemble), in chunks of at most ``rollout_chunk`` starts,
    into the model buffer; returns ``(carry, stats)``."""
    num_starts = config.rollouts_per_step * config.rollout_freq
    chunk = max(d for d in range(1, min(num_starts, config.rollout_chunk) + 1)
                if num_starts % d == 0)

    def branch(carry: RolloutLoopState, key):
        key_start, key_roll = jax.random.split(key)
        starts = buffer.sample(carry.env_buffer, key_start, num_starts).obs
        step_fn = (model_step if model_step is not None else dynamics.make_model_step(
            carry.model, reward_fn=reward_fn, termination_fn=termination_fn))
        policy = lambda k, obs: explore(carry.learner, k, obs, carry.env_steps)
        length = horizon(carry.env_steps)

        def one_chunk(inputs):
            chunk_key, chunk_starts = inputs
            return rollout.branched_rollout(chunk_key, step_fn, policy, chunk_starts,
                                            length, max_horizon=max_horizon)

        num_chunks = num_starts // chunk
        transitions, valid = jax.lax.map(one_chunk, (
            jax.random.split(key_roll, num_chunks),
            starts.reshape(num_chunks, chunk, *starts.shape[1:])))
        # [chunks, horizon, chunk, ...] -> [horizon, chunks * chunk, ...]
        merge = lambda x: jnp.moveaxis(x, 0, 1).reshape(x.shape[1], num_starts, *x.shape[3:])
        flat, mask = rollout.flatten(jax.tree.map(merge, transitions), merge(valid))
        model_buffer = buffer.add(carry.model_buffer, flat, mask)
        stats = {"rollout_length": length, "rollouts_added": mask.sum(),
                 # imagined transitions holding a non-finite number: never stored
                 "rollouts_nonfinite": jnp.sum(~rollout.finite_rows(flat)),
                 "model_reward_mean": jnp.sum(jnp.where(mask, flat.reward, 0.0))
                 / jnp.maximum(mask.sum(), 1)}
        return carry.replace(model_buffer=model_buffer), stats

    return branch


def make_rollout_loop(config, parts: RolloutLoopParts) -> TrainLoop:
    """The loop of ``rollout_loop_parts`` (its docstring) as a ``TrainLoop``.

    Blocks are scanned, not branched with ``lax.cond``: under ``vmap`` a ``cond`` on a step
    counter would run the model fit at every step for every seed. Metrics per evaluation:
    ``env_steps``, ``eval_return``, ``eval_length``, ``model_buffer_size``, the model's holdout
    MSE (elites), epochs and non-finite flag, ``rollout_length``, ``rollouts_added``,
    ``rollouts_nonfinite`` (imagined transitions with a non-finite number, masked out of the
    buffer), ``model_reward_mean``, and the means of the updates' info (``rollout_length`` and
    the rest of the branch stats only when the model is on).
    """
    def rollout_block(carry: RolloutLoopState, key):
        key_branch, key_steps = jax.random.split(key)
        carry, stats = parts.branch(carry, key_branch)
        carry, info = jax.lax.scan(parts.env_step, carry,
                                   jax.random.split(key_steps, config.rollout_freq))
        return carry, {**stats, **jax.tree.map(jnp.mean, info)}

    def model_block(carry: RolloutLoopState, key):
        key_fit, key_blocks = jax.random.split(key)
        carry, fit_info = parts.fit(carry, key_fit)
        blocks = config.model_train_freq // config.rollout_freq
        carry, info = jax.lax.scan(rollout_block, carry, jax.random.split(key_blocks, blocks))
        return carry, {**fit_info, **jax.tree.map(jnp.mean, info)}

    step = _iteration(config, parts.env, parts.env_params, parts.learner, model_block,
                      lambda carry: {"model_buffer_size": carry.model_buffer.size})
    return TrainLoop(init=parts.init, step=step, num_iterations=config.num_iterations)
