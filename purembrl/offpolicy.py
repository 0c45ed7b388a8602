"""The off-policy loop every deep algorithm runs on: SAC, DQN, MBPO, MBA, deep Dyna and MBVE.

After ``initial_random_steps`` uniformly random real steps into the replay buffer, step
``t = 0 .. T-1`` of the trained budget ``T = total_steps - initial_random_steps`` is

    if t % model_train_freq == 0:  fit the ensemble on the replay buffer         (fit)
    if t % rollout_freq == 0:      branch model rollouts from real states into
                                   the model buffer                              (branch)
    act with ``behaviour_policy``, store the real transition
    if (initial_random_steps + t) % train_every == 0:  the learner's updates     (updates)

and the deterministic policy is evaluated after every ``eval_every`` steps and after the last.
An algorithm supplies its updates and the parts it has (``make_parts``): SAC and DQN have no
model, so neither fit nor branch; deep Dyna and MBVE query the model inside their updates
(fit, no branch); MBPO and MBA have both (MBPO's Algorithm 2; Gu et al. 2016's imagination
rollouts). The periods need not divide one another nor the budget: the last evaluation
period is cut at ``T``.

One ``TrainLoop`` iteration is one evaluation period, scanned in blocks of steps. Fit, branch
and updates sit under ``lax.cond`` on the step number, which comes from the iteration index
(never batched), so under ``vmap`` a cond stays a real branch: a fit runs on its steps only;
a part that can only fall on a block's first step is decided once per block.

Random keys are laid out as nested blocks (``purembrl.periods``), so that when the periods nest
(``rollout_freq | model_train_freq | eval_every``, the budget whole periods) a run draws
exactly the keys of the nested scans this loop replaced, and reproduces their numbers; per
period, a metric is the mean of its event's info (nested the same way when the periods nest),
or the latest event's info in a period where that event did not happen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, dynamics, envs, interact, learners, periods, rollout
from purembrl.config import check_choice
from purembrl.learners import Learner
from purembrl.loop import TrainLoop
from purembrl.types import Transition

Explore = Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]


@struct.dataclass
class OffPolicyState:
    """Everything a run carries.

    Attributes:
      learner: the learner's state. model: the ensemble (``None`` without a model).
      replay: real transitions. model_buffer: imagined ones (``None`` without rollouts).
      obs, env_state: where the real env is. env_steps: real steps so far (warm-up included).
      latest: ``{part: info}`` of the latest fit, branch and updates (reported for a period
        in which that part did not run).
      key: the run's key, split once per evaluation period.
    """

    learner: Any
    model: Any
    replay: buffer.BufferState
    model_buffer: Any
    obs: jax.Array
    env_state: Any
    env_steps: jax.Array
    latest: dict
    key: jax.Array


# A part of the loop: ``(state, key) -> (state, info)``.
Part = Callable[[OffPolicyState, jax.Array], tuple[OffPolicyState, dict]]


class Rollouts(NamedTuple):
    """What ``branch`` rolls out: ``rollouts_per_step * rollout_freq`` rollouts of
    ``horizon(env_steps) <= max_horizon`` steps, into a model buffer of ``buffer_size``.

    ``model_step``: a fixed model instead of the fitted ensemble (``known.true_model_step``);
    ``reward_fn`` / ``termination_fn``: known functions plugged into the fitted ensemble;
    ``on=False``: no rollouts (the part keeps its place in the schedule, doing nothing);
    ``n_step > 1``: the model buffer holds returns of up to ``n_step`` steps along each branch,
    discounted by ``gamma``, with their ``discount`` (``rollout.branch_returns``);
    ``obs_fn``: the fitted ensemble's predicted observations post-processed
    (``known.OBS_PROJECTIONS``); ``policy``: how the rollouts act (``ROLLOUT_POLICIES``)."""

    buffer_size: int
    horizon: Callable[[jax.Array], jax.Array]
    max_horizon: int
    reward_fn: Any = None
    termination_fn: Any = None
    model_step: rollout.ModelStep | None = None
    on: bool = True
    n_step: int = 1
    gamma: float | None = None
    obs_fn: Any = None
    policy: str = "behaviour"


# How branched rollouts act. "behaviour": the real steps' exploring policy, on its schedule
# (MBPO's choice); "settled": the learner's exploration as at the end of its schedule (DQN at
# eps_end; SAC's and NAF's noise has no schedule, so for them it is "behaviour"); "greedy": the
# learner's deterministic action.
ROLLOUT_POLICIES = ("behaviour", "settled", "greedy")
_SETTLED = 2**30  # a step past any exploration schedule (epsilon's decay is clipped there)


class Parts(NamedTuple):
    """The loop's pieces, each a pure function: time them apart
    (``benchmarks/mbpo_profile.py``) or compose a loop of your own.

    Attributes:
      env, env_params, learner: what the loop steps and trains.
      init: ``key -> OffPolicyState``: a fresh learner (and model), ``initial_random_steps``
        random steps in the replay buffer, an empty model buffer.
      real_step: ``(state, key_act, key_env) -> state``: act with ``behaviour_policy``, store
        the transition.
      updates: a ``Part``, the learner's updates after a real step (changes ``learner``).
      fit: a ``Part`` refitting the model (changes ``model``; ``None``: no model).
      branch: a ``Part`` filling the model buffer (changes ``model_buffer``; ``None``: no
        rollouts).
    """

    env: Any
    env_params: Any
    learner: Learner
    init: Callable[[jax.Array], OffPolicyState]
    real_step: Callable[[OffPolicyState, jax.Array, jax.Array], OffPolicyState]
    updates: Part
    fit: Part | None = None
    branch: Part | None = None


def behaviour_policy(config, learner: Learner) -> Explore:
    """``(learner_state, key, obs [B, d], env_steps) -> action [B, ...]``: the learner's
    exploring ``act``, its ``step`` counted from the end of the ``initial_random_steps``
    warm-up (DQN's epsilon schedule; SAC and NAF sample their own noise). Real steps act with
    it, and so do model rollouts unless ``Rollouts.policy`` says otherwise."""
    def explore(learner_state, key, obs, env_steps):
        return learner.act(learner_state, key, obs, True, env_steps - config.initial_random_steps)

    return explore


def repeated(update: Callable[[Any, OffPolicyState, jax.Array], tuple[Any, dict]],
             num_updates: int) -> Part:
    """The ``updates`` part of ``num_updates`` (G) calls ``update(learner_state, state, key) ->
    (learner_state, info)`` scanned over ``jax.random.split(key, G)``; info: their means."""
    def updates(state: OffPolicyState, key):
        learner_state, info = jax.lax.scan(lambda s, k: update(s, state, k), state.learner,
                                           jax.random.split(key, num_updates))
        return state.replace(learner=learner_state), jax.tree.map(jnp.mean, info)

    return updates


def trained_policy(state: OffPolicyState, config):
    """The deterministic policy of a run's ``state`` as a pure function ``(key, obs [B, d]) ->
    action``: the learner that ``config.learner`` (with ``config.normalize_obs``) builds for
    ``config.env``, acting without exploration."""
    env, env_params = envs.make(config.env, config.env_params)
    learner = learners.make(config.learner, interact.spec(env, env_params), config.normalize_obs)
    return learners.policy(learner, state.learner)


def model_free_loop(config, name: str, *, discrete: bool, n_step: int = 1) -> TrainLoop:
    """SAC's or DQN's loop: this loop without a model, ``config.updates_per_step`` (G)
    learner updates on uniform minibatches of ``config.batch_size`` real transitions after
    each step (every ``train_every`` steps where the config has it). With ``n_step > 1`` (DQN
    only) the minibatches hold n-step returns with the learner's gamma
    (``buffer.sample_n_step``; the replay then stores where episodes end). ``ValueError`` when
    the env's action space is not the learner's."""
    env, env_params = envs.make(config.env, config.env_params)
    env_spec = interact.spec(env, env_params)
    if env_spec.discrete != discrete:
        kind, other = ("discrete", "sac") if discrete else ("continuous", "dqn")
        raise ValueError(f"env={config.env!r} is invalid: {name} needs a {kind} action "
                         f"space (use {other} for {'continuous' if discrete else 'discrete'} "
                         "actions)")
    if n_step > 1 and not discrete:
        raise ValueError(f"n_step={n_step} is invalid for {name}: n-step returns are "
                         "implemented for DQN only")
    learner = learners.make(config.learner, env_spec, config.normalize_obs)
    draw = buffer.sampler(n_step, config.learner.gamma)

    def update(learner_state, state: OffPolicyState, key):
        key_sample, key_learn = jax.random.split(key)
        batch = draw(state.replay, key_sample, config.batch_size)
        return learner.update(learner_state, batch, key_learn)

    updates = repeated(update, config.updates_per_step)
    return make_loop(config, make_parts(config, env, env_params, learner, updates,
                                        episode_end=n_step > 1))


def make_parts(config, env, env_params, learner: Learner, updates: Part, *,
               model_config: dynamics.EnsembleConfig | None = None, fit: bool = True,
               rollouts: Rollouts | None = None, episode_end: bool = False) -> Parts:
    """The parts of a run (the module docstring): ``model_config`` ``None`` for a model-free
    run; ``fit=False`` keeps the model as initialised (a fixed model, or one switched off)
    while the fit keeps its place in the schedule; ``rollouts`` ``None`` for no model buffer;
    ``episode_end``: the replay also stores which steps end an episode (for n-step returns).
    The ``config`` needs ``initial_random_steps`` and ``buffer_size`` (and ``model_train_freq``
    with a model, ``rollout_freq``, ``rollouts_per_step`` and ``rollout_chunk`` with
    rollouts)."""
    env_spec = interact.spec(env, env_params)
    _check_rows("buffer_size", config.buffer_size)
    if rollouts is not None:
        check_choice("Rollouts.policy", rollouts.policy, ROLLOUT_POLICIES)
        if rollouts.n_step > 1 and rollouts.gamma is None:
            raise ValueError(f"Rollouts(n_step={rollouts.n_step}) needs the learner's gamma")
        _check_rows("the model buffer's size (from rollouts_per_step, rollout_freq, the "
                    "rollout length and how long rollouts are kept)", rollouts.buffer_size)
    explore = behaviour_policy(config, learner)
    fit_part = branch_part = None
    if model_config is not None:
        fit_part = _fit(model_config) if fit else (lambda state, key: (state, {}))
    if rollouts is not None:
        branch_part = (_branch(config, learner, rollouts, model_config) if rollouts.on
                       else (lambda state, key: (state, {})))

    def init(key):
        keys = jax.random.split(key, 4 if model_config is None else 5)
        key_learner, *key_model, key_reset, key_warm, key_run = keys
        obs, env_state = env.reset(key_reset, env_params)
        obs, env_state, replay = interact.warmup(
            env, env_params, key_warm, env_state, obs.astype(jnp.float32),
            buffer.init(interact.example_transition(env_spec, episode_end), config.buffer_size),
            config.initial_random_steps)
        model = (None if model_config is None else
                 dynamics.init(key_model[0], model_config, env_spec.obs_dim,
                               env_spec.num_actions))
        model_buffer = (None if rollouts is None else buffer.init(
            _model_example(replay.data, rollouts.n_step > 1),
            rollouts.buffer_size if rollouts.on else 1))
        state = OffPolicyState(learner=learner.init(key_learner), model=model, replay=replay,
                               model_buffer=model_buffer, obs=obs, env_state=env_state,
                               env_steps=jnp.full((), config.initial_random_steps, jnp.int32),
                               latest={}, key=key_run)
        parts = {"fit": fit_part, "branch": branch_part, "updates": updates}
        latest = {name: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                                     jax.eval_shape(part, state, key_run)[1])
                  for name, part in parts.items() if part is not None}
        return state.replace(latest=latest)

    def real_step(state: OffPolicyState, key_act, key_env):
        action = explore(state.learner, key_act, state.obs[None], state.env_steps)[0]
        obs, env_state, replay = interact.step_into(env, env_params, key_env, state.env_state,
                                                    state.obs, action, state.replay)
        return state.replace(replay=replay, obs=obs, env_state=env_state,
                             env_steps=state.env_steps + 1)

    return Parts(env=env, env_params=env_params, learner=learner, init=init,
                 real_step=real_step, updates=updates, fit=fit_part, branch=branch_part)


MAX_ROWS = 2**31 - 1  # a buffer's rows are indexed by int32


def _check_rows(what: str, rows: int) -> None:
    if rows > MAX_ROWS:
        raise ValueError(f"{what}={rows} is invalid: allowed at most {MAX_ROWS} rows "
                         "(buffers are indexed by int32)")


def _model_example(data: Transition, discount: bool) -> Transition:
    """One row of the model buffer: a real row without ``episode_end``, with a ``discount``
    when the rollouts store multi-step returns."""
    row = jax.tree.map(lambda x: x[0], data.replace(episode_end=None))
    return row.replace(discount=jnp.zeros((), jnp.float32) if discount else None)


def _fit(model_config: dynamics.EnsembleConfig) -> Part:
    """Refit the ensemble on the replay buffer (``purembrl.dynamics.fit``); info: the elites'
    holdout MSE, the epochs run and the non-finite flag."""
    def fit(state: OffPolicyState, key):
        model, info = dynamics.fit(state.model, state.replay, key, model_config)
        return state.replace(model=model), {"model_val_mse": info["val_mse"][info["elites"]].mean(),
                       "model_epochs": info["epochs"], "model_nonfinite": info["nonfinite"]}

    return fit


def _branch(config, learner: Learner, rollouts: Rollouts,
            model_config: dynamics.EnsembleConfig | None) -> Part:
    """``rollouts_per_step * rollout_freq`` rollouts of ``horizon(env_steps)`` steps from
    start states drawn from the replay buffer, through ``rollouts.model_step`` (else the fitted
    ensemble), into the model buffer. They run in chunks of at most ``config.rollout_chunk``
    starts: every member of the ensemble sees every start, so one 100k-start batch would hold
    [members, 100k, width] activations per layer."""
    num_starts = config.rollouts_per_step * config.rollout_freq
    explore = behaviour_policy(config, learner)
    chunk = max(d for d in range(1, min(num_starts, config.rollout_chunk) + 1)
                if num_starts % d == 0)

    def branch(state: OffPolicyState, key):
        key_start, key_roll = jax.random.split(key)
        starts = buffer.sample(state.replay, key_start, num_starts).obs
        step_fn = rollouts.model_step or dynamics.make_model_step(
            state.model, model_config, reward_fn=rollouts.reward_fn,
            termination_fn=rollouts.termination_fn, obs_fn=rollouts.obs_fn)
        if rollouts.policy == "greedy":
            policy = lambda k, obs: learner.act(state.learner, k, obs, False)
        else:
            steps = (state.env_steps if rollouts.policy == "behaviour"
                     else jnp.int32(_SETTLED))
            policy = lambda k, obs: explore(state.learner, k, obs, steps)
        length = rollouts.horizon(state.env_steps)

        def one_chunk(inputs):
            chunk_key, chunk_starts = inputs
            return rollout.branched_rollout(chunk_key, step_fn, policy, chunk_starts,
                                            length, max_horizon=rollouts.max_horizon)

        num_chunks = num_starts // chunk
        transitions, valid = jax.lax.map(one_chunk, (
            jax.random.split(key_roll, num_chunks),
            starts.reshape(num_chunks, chunk, *starts.shape[1:])))
        # [chunks, horizon, chunk, ...] -> [horizon, chunks * chunk, ...]
        merge = lambda x: jnp.moveaxis(x, 0, 1).reshape(x.shape[1], num_starts, *x.shape[3:])
        transitions, valid = jax.tree.map(merge, transitions), merge(valid)
        flat, mask = rollout.flatten(transitions, valid)
        stats = {"rollout_length": length, "rollouts_added": mask.sum(),
                 # imagined transitions holding a non-finite number: never stored
                 "rollouts_nonfinite": jnp.sum(~rollout.finite_rows(flat)),
                 "model_reward_mean": jnp.sum(jnp.where(mask, flat.reward, 0.0))
                 / jnp.maximum(mask.sum(), 1)}
        if rollouts.n_step > 1:
            flat, _ = rollout.flatten(rollout.branch_returns(
                transitions, valid, rollouts.n_step, rollouts.gamma), valid)
        return state.replace(model_buffer=buffer.add(state.model_buffer, flat, mask)), stats

    return branch


# The field of the state each periodic part changes: the only one its lax.cond passes through.
FIELDS = {"fit": "model", "branch": "model_buffer", "updates": "learner"}


def env_step(parts: Parts) -> Part:
    """One real step and the learner's updates after it, as a ``Part`` (the loop's step when
    the updates run on every step)."""
    def step(state: OffPolicyState, key):
        key_act, key_env, key_update = jax.random.split(key, 3)
        return parts.updates(parts.real_step(state, key_act, key_env), key_update)

    return step


def make_loop(config, parts: Parts) -> TrainLoop:
    """The loop of the module docstring as a ``TrainLoop`` of ``ceil(T / eval_every)``
    iterations. Metrics per evaluation: ``env_steps``, ``eval_return``, ``eval_length``,
    ``model_buffer_size`` (with rollouts), and the period's means of each part's info: the fit's
    ``model_val_mse``, ``model_epochs``, ``model_nonfinite`` (any), the branch's
    ``rollout_length``, ``rollouts_added``, ``rollouts_nonfinite`` (imagined transitions with a
    non-finite number, never stored), ``model_reward_mean``, and the updates' info.

    The ``config`` needs ``total_steps``, ``initial_random_steps``, ``eval_every``,
    ``eval_episodes``, and ``model_train_freq`` / ``rollout_freq`` / ``train_every`` where the
    parts have a fit / a branch / updates that skip steps."""
    trained = config.total_steps - config.initial_random_steps
    if trained < 1:
        raise ValueError(f"total_steps={config.total_steps} is invalid: allowed more than "
                         f"initial_random_steps={config.initial_random_steps}")
    period = min(config.eval_every, trained)
    num_periods = -(-trained // period)
    events = [periods.Event(name, part, FIELDS[name], getattr(config, freq))
              for name, part, freq in (("fit", parts.fit, "model_train_freq"),
                                       ("branch", parts.branch, "rollout_freq"))
              if part is not None]
    updates = periods.Event("updates", parts.updates, FIELDS["updates"],
                            getattr(config, "train_every", 1), config.initial_random_steps)
    full = _period(config, parts, events, updates, period, period)
    tail = trained - (num_periods - 1) * period
    if tail == period:
        return TrainLoop(init=parts.init, step=full, num_iterations=num_periods)
    last = _period(config, parts, events, updates, tail, period)

    def step(state, iteration):
        return jax.lax.cond(iteration == num_periods - 1, last, full, state, iteration)

    return TrainLoop(init=parts.init, step=step, num_iterations=num_periods)


def _period(config, parts: Parts, events: list[periods.Event], updates: periods.Event,
            length: int, stride: int):
    """One iteration: ``length`` steps from step ``iteration * stride``, then an evaluation."""
    freqs = tuple(e.every for e in events)
    nested = length == stride and all(
        outer % inner == 0 for outer, inner in zip((length, *freqs), freqs, strict=False))
    max_steps = interact.spec(parts.env, parts.env_params).max_steps

    def real_step_and_updates(state: OffPolicyState, t, key):
        key_act, key_env, key_update = jax.random.split(key, 3)
        state = parts.real_step(state, key_act, key_env)
        return periods.events_at(state, [updates], [key_update], t)

    steps = periods.scan_period(events, real_step_and_updates, length, stride)

    def step(state: OffPolicyState, iteration):
        key, key_period, key_eval = jax.random.split(state.key, 3)
        event_keys, step_keys = periods.period_keys(key_period, freqs, length)
        state, flags, infos = steps(state.replace(key=key), iteration * stride, event_keys,
                                    step_keys)
        policy = lambda k, obs: parts.learner.act(state.learner, k, obs, explore=False)
        eval_return, eval_length = interact.evaluate(parts.env, parts.env_params, policy,
                                                     key_eval, config.eval_episodes, max_steps)
        metrics = {"env_steps": state.env_steps, "eval_return": eval_return,
                   "eval_length": eval_length}
        if parts.branch is not None:
            metrics["model_buffer_size"] = state.model_buffer.size
        shape, latest = periods.grid_shape(length, freqs), {}
        for level, name in enumerate([*(e.name for e in events), "updates"]):
            every = freqs[level] if level < len(freqs) else updates.every
            on_grid = nested and (name != "updates" or updates.every == 1)
            summary, latest[name] = periods.summarise(infos[name], flags[name], state.latest[name],
                                               shape[:level + 1] if on_grid else None, every)
            metrics.update(summary)
        return state.replace(latest=latest), metrics

    return step
