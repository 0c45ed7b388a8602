"""Tabular Dyna-Q and Dyna-Q+, fully jitted (Sutton 1990; Sutton & Barto 2018, Sections 8.2-8.3).

Each real step: act epsilon-greedily (ties broken at random), take a Q-learning step on the real
transition, record it in the model, then make ``planning_steps`` (n) simulated Q-learning updates
from (s, a) drawn from experience: a random previously observed state, then a random action
previously taken in it (the book's Tabular Dyna-Q box).

Options:

* ``plus=True``: Dyna-Q+ (Section 8.3). Simulated rewards get the bonus ``kappa * sqrt(tau)``,
  tau the number of real steps since (s, a) was last tried; planning also considers actions never
  tried from an observed state, modelled as leading back to the same state with reward 0 (the
  book's footnote to Figure 8.4).
* ``model="counts"``: a stochastic, count-based model. Each planning update draws
  ``num_next_samples`` next states from the empirical distribution of (s, a) and regresses Q(s, a)
  on the *average* target over them (the notes' expected update); ``num_next_samples=0`` uses the
  exact expectation under the counts. ``model="deterministic"`` (default) is the book's: the last
  observed (s', r).

The run is either ``num_episodes`` episodes (one iteration, and one greedy evaluation, per
episode; Figure 8.2) or, when ``num_steps > 0``, a fixed number of real steps evaluated every
``eval_every`` steps with the cumulative reward recorded (Figures 8.4 and 8.5).

``planning_steps``, ``alpha``, ``gamma``, ``epsilon``, ``kappa`` and ``slip_prob`` are pytree
leaves: ``jax.vmap`` over a batch of configs sweeps them in one compile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct
from jax.extend.random import threefry_2x32

from purembrl import envs, value
from purembrl.config import (
    Presets,
    check,
    check_choice,
    check_extension,
    check_int,
    check_types,
    static,
)
from purembrl.loop import EpisodeLoop, TrainLoop, as_train, episodes_loop

ENVS = ("DynaMaze", "BlockingMaze", "ShortcutMaze")
MODELS = ("deterministic", "counts")


@struct.dataclass
class Config(Presets):
    """Dyna-Q hyperparameters; defaults are the book's Figure 8.2 settings.

    Attributes:
      env: a tabular environment, one of ``ENVS``.
      env_params: environment parameters in place of the env's defaults, ``"NAME=VALUE,..."``
        (gymnax's ``EnvParams`` fields, e.g. ``"max_speed=10"``; ``""``: the defaults).
      num_episodes: episodes in an episode-mode run (``num_steps == 0``).
      num_steps: real steps in a step-mode run; 0 selects episode mode.
      eval_every: step mode only: real steps between evaluations (and one at the end).
      planning_steps: n, simulated updates per real step (0: plain Q-learning).
      alpha: step size. gamma: discount. epsilon: exploration rate of the behaviour policy.
      kappa: Dyna-Q+ exploration bonus scale (used when ``plus``).
      plus: Dyna-Q+ (bonus in planning, untried actions modelled as self-loops).
      model: ``"deterministic"`` (last observed outcome) or ``"counts"`` (empirical distribution).
      num_next_samples: ``model="counts"``: s' drawn per planning update (0: exact expectation).
      slip_prob: probability the environment replaces the action by a random one.
      eval_episodes: greedy evaluation episodes per evaluation.
      eval_max_steps: cap on the length of an evaluation episode.
      max_episode_steps: time limit of a training episode (truncation, bootstrapped through).
    """

    env: str = static("DynaMaze")
    env_params: str = static("")
    num_episodes: int = static(50)
    num_steps: int = static(0)
    eval_every: int = static(50)
    planning_steps: int = 5
    alpha: float = 0.1
    gamma: float = 0.95
    epsilon: float = 0.1
    kappa: float = 0.0
    plus: bool = static(False)
    model: str = static("deterministic")
    num_next_samples: int = static(1)
    slip_prob: float = 0.0
    eval_episodes: int = static(1)
    eval_max_steps: int = static(500)
    max_episode_steps: int = static(100_000)

    # A sweep steps the points of each planning_steps value apart (purembrl.driver.sweeps):
    # under one vmap every run would pay the largest n's planning loop at each real step.
    SWEEP_GROUPS: ClassVar[tuple[str, ...]] = ("planning_steps",)

    def __post_init__(self):
        check_types(self)
        check_choice("env", self.env, ENVS)
        envs.parse_params(self.env_params)
        check_int("num_episodes", self.num_episodes, 1)
        check_int("num_steps", self.num_steps, 0)
        check_int("eval_every", self.eval_every, 1)
        check_int("planning_steps", self.planning_steps, 0)
        check("alpha", self.alpha, lambda v: (v > 0) & (v <= 1), "0 < alpha <= 1")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v <= 1), "0 <= gamma <= 1")
        check("epsilon", self.epsilon, lambda v: (v >= 0) & (v <= 1), "0 <= epsilon <= 1")
        check("kappa", self.kappa, lambda v: v >= 0, "kappa >= 0")
        check("slip_prob", self.slip_prob, lambda v: (v >= 0) & (v <= 1), "0 <= slip_prob <= 1")
        check_choice("model", self.model, MODELS)
        check_int("num_next_samples", self.num_next_samples, 0)
        check_int("eval_episodes", self.eval_episodes, 1)
        check_int("eval_max_steps", self.eval_max_steps, 1)
        check_int("max_episode_steps", self.max_episode_steps, 1)

    @property
    def num_iterations(self) -> int:
        return -(-self.num_steps // self.eval_every) if self.num_steps > 0 else self.num_episodes

    def check_extension(self, shorter) -> None:
        """``ValueError`` unless this config is ``shorter`` with more episodes (episode mode)
        or more steps (step mode, ``shorter``'s ``num_steps`` a multiple of ``eval_every``):
        then continuing ``shorter``'s run equals this run from the start (nothing but the
        iteration count depends on the budget)."""
        if shorter.num_steps == 0:
            check_extension(shorter, self, "num_episodes", self.num_steps == 0, "")
            return
        check_extension(shorter, self, "num_steps", shorter.num_steps % shorter.eval_every == 0,
                        f"num_steps: the run's last evaluation period was cut at num_steps="
                        f"{shorter.num_steps} (not a multiple of eval_every="
                        f"{shorter.eval_every}); continuing it would not equal a longer run "
                        "from the start; start a new run")


@struct.dataclass
class DynaQState:
    """Everything a Dyna-Q run carries. S states, A actions.

    Attributes:
      q: action values ``[S, A]``.
      next_state, reward, terminal: the deterministic model, ``[S, A]`` (untried: self-loop, 0).
      counts, reward_sum, terminal_sum: the count model, ``[S, A, S]``.
      tried: whether (s, a) was ever taken, ``[S, A]``; last_tried: real step it was last taken.
      observed: observed states in order of first visit ``[S]``; num_observed: how many.
      obs, env_state: the environment's current observation and state.
      t: real steps so far; episodes: completed episodes; cumulative_reward: sum of real rewards.
      key: the run's PRNG key.
    """

    q: jax.Array
    next_state: jax.Array
    reward: jax.Array
    terminal: jax.Array
    counts: jax.Array
    reward_sum: jax.Array
    terminal_sum: jax.Array
    tried: jax.Array
    last_tried: jax.Array
    observed: jax.Array
    num_observed: jax.Array
    obs: jax.Array
    env_state: object
    t: jax.Array
    episodes: jax.Array
    cumulative_reward: jax.Array
    key: jax.Array


def epsilon_greedy(u: jax.Array, q_row: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Epsilon-greedy with random tie-breaking from three uniforms ``u`` ([3]).

    One uniform draw per decision instead of three keyed samplers keeps the jitted loop small
    (each ``jax.random`` call inlines a Threefry hash).
    """
    num_actions = q_row.shape[0]
    random_action = jnp.minimum(jnp.floor(u[1] * num_actions), num_actions - 1).astype(jnp.int32)
    return jnp.where(u[0] < epsilon, random_action, value.random_argmax(u[2], q_row))


def counter_uniforms(key_data: jax.Array, i: jax.Array, n: int) -> jax.Array:
    """``n`` uniforms in [0, 1) for draw ``i`` of one key: Threefry-2x32 (Salmon et al. 2011)
    of the counters (i, j), j < ceil(n / 2), each block giving two 32-bit words, turned into
    floats as ``jax.random.uniform`` does (23 random mantissa bits).

    Distinct (i, j) are distinct counters under one key, so the draws of a loop's iterations
    are independent. A planning update's two uniforms cost one block this way, against three
    for the earlier ``uniform(fold_in(key, i), (3,))`` (the fold-in hashes one, and three
    words take two blocks): the hash was most of a tabular update's work (issue 24).

    Args:
      key_data: the raw key, ``uint32 [2]`` (``jax.random.key_data``). i: the draw's index.
      n: how many uniforms (static).
    """
    m = -(-n // 2)
    counters = jnp.concatenate([jnp.full((m,), i, jnp.uint32), jnp.arange(m, dtype=jnp.uint32)])
    bits = threefry_2x32(key_data, counters)[:n]
    floats = jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32)
    return floats - 1.0


def count_model_targets(counts: jax.Array, reward_sum: jax.Array, terminal_sum: jax.Array,
                        q: jax.Array, gamma: jax.Array, s: jax.Array
                        ) -> tuple[jax.Array, jax.Array]:
    """The count model's distribution over s' and the one-step target for each s'.

    Args:
      counts, reward_sum, terminal_sum: for one (s, a), ``[S']``: visits to each s', and the
        summed rewards and terminal flags of those visits.
      q: action values ``[S, A]``. gamma: discount. s: the state, the self-loop of an untried
        (s, a) (Dyna-Q+ plans with those; the book models them as reward 0, staying put).

    Returns:
      ``probs [S']`` (empirical P(s' | s, a)) and ``targets [S']`` =
      mean reward + gamma * (1 - terminal) * max_a' Q(s', a'); their dot product is the
      expected update's target, and a mean over sampled s' estimates it.
    """
    total = counts.sum()
    probs = jnp.where(total > 0, counts / jnp.maximum(total, 1.0),
                      jax.nn.one_hot(s, counts.shape[0]))
    safe = jnp.maximum(counts, 1.0)
    targets = reward_sum / safe + gamma * (1.0 - terminal_sum / safe) * q.max(axis=1)
    return probs, targets


def sample_categorical(u: jax.Array, probs: jax.Array) -> jax.Array:
    """Inverse-CDF samples ``[K]`` from ``probs`` ([N]) given uniforms ``u`` ([K])."""
    cdf = jnp.cumsum(probs)
    samples = jnp.sum(cdf[None, :] <= u[:, None] * cdf[-1], axis=1)
    last = probs.shape[0] - 1 - jnp.argmax(probs[::-1] > 0)  # round-off never picks p = 0
    return jnp.minimum(samples, last)


class Parts(NamedTuple):
    """A run's pieces, shared by the step-mode loop and the episode loop.

    ``init(key) -> DynaQState``; ``real_step(c) -> (c, reward, done)``: one real step, its
    Q-learning and model updates and n planning updates; ``evaluate(q, env_state, key) ->
    (mean return, mean length)`` of greedy episodes on ``q`` (the env as in ``env_state``)."""

    init: Callable[[jax.Array], DynaQState]
    real_step: Callable[[DynaQState], tuple[DynaQState, jax.Array, jax.Array]]
    evaluate: Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, jax.Array]]


def make_parts(config: Config) -> Parts:
    """The pieces of a Dyna-Q run for ``config`` (see ``Parts``)."""
    env, env_params = envs.make(config.env, config.env_params)
    env_params = env_params.replace(slip_prob=config.slip_prob,
                                    max_steps_in_episode=config.max_episode_steps)
    num_states, num_actions = env.num_states, env.num_actions

    def init(key: jax.Array) -> DynaQState:
        key_reset, key_run = jax.random.split(key)
        obs, env_state = env.reset(key_reset, env_params)
        states = jnp.arange(num_states, dtype=jnp.int32)
        # Only the chosen model's tables are allocated; the other's have size zero.
        table = (num_states, num_actions) if config.model == "deterministic" else (0, 0)
        cube = (num_states, num_actions, num_states) if config.model == "counts" else (0, 0, 0)
        return DynaQState(
            q=jnp.zeros((num_states, num_actions)),
            next_state=jnp.zeros(table, jnp.int32) + (states[:, None] if table[0] else 0),
            reward=jnp.zeros(table),
            terminal=jnp.zeros(table, bool),
            counts=jnp.zeros(cube),
            reward_sum=jnp.zeros(cube),
            terminal_sum=jnp.zeros(cube),
            tried=jnp.zeros((num_states, num_actions), bool),
            last_tried=jnp.zeros((num_states, num_actions), jnp.int32),
            observed=jnp.zeros((num_states,), jnp.int32),
            num_observed=jnp.zeros((), jnp.int32),
            obs=obs,
            env_state=env_state,
            t=jnp.zeros((), jnp.int32),
            episodes=jnp.zeros((), jnp.int32),
            cumulative_reward=jnp.zeros(()),
            key=key_run,
        )

    def planning_target(c: DynaQState, u: jax.Array, s: jax.Array, a: jax.Array) -> jax.Array:
        """The model's target r + gamma * max_a' Q(s', a') for (s, a); ``u`` [K] uniforms."""
        if config.model == "deterministic":
            s_next = c.next_state[s, a]
            not_terminal = 1.0 - c.terminal[s, a]
            return c.reward[s, a] + config.gamma * not_terminal * c.q[s_next].max()
        probs, targets = count_model_targets(c.counts[s, a], c.reward_sum[s, a],
                                             c.terminal_sum[s, a], c.q, config.gamma, s)
        if config.num_next_samples == 0:
            return probs @ targets
        return targets[sample_categorical(u, probs)].mean()

    # uniforms per planning update: (s, a), then the count model's K draws of s'
    num_uniforms = 2 + (config.num_next_samples if config.model == "counts" else 0)

    def planning_update(i, carry):
        c, draws = carry  # the updates' uniforms [n, K], or the planning key's data
        u = counter_uniforms(draws, i, num_uniforms) if draws.ndim == 1 else draws[i]
        s = c.observed[jnp.minimum(jnp.floor(u[0] * c.num_observed).astype(jnp.int32),
                                   c.num_observed - 1)]
        allowed = jnp.ones((num_actions,), bool) if config.plus else c.tried[s]
        a = value.uniform_choice(u[1], allowed)
        target = planning_target(c, u[2:], s, a)
        if config.plus:
            target += config.kappa * jnp.sqrt((c.t - c.last_tried[s, a]).astype(jnp.float32))
        return c.replace(q=c.q.at[s, a].add(config.alpha * (target - c.q[s, a]))), draws

    def real_step(c: DynaQState) -> tuple[DynaQState, jax.Array, jax.Array]:
        """One real step, its Q-learning and model updates, then n planning updates."""
        key, key_act, key_env, key_plan = jax.random.split(c.key, 4)
        s = env.obs_to_index(c.obs)
        a = epsilon_greedy(jax.random.uniform(key_act, (3,)), c.q[s], config.epsilon)
        obs, env_state, r, terminated, truncated, info = env.step(key_env, c.env_state, a,
                                                                  env_params)
        s_next = env.obs_to_index(info["final_observation"])
        target = r + config.gamma * (1.0 - terminated) * c.q[s_next].max()
        tried_row = c.tried[s]
        first_visit = ~tried_row.any()
        if config.model == "counts":
            c = c.replace(
                counts=c.counts.at[s, a, s_next].add(1.0),
                reward_sum=c.reward_sum.at[s, a, s_next].add(r),
                terminal_sum=c.terminal_sum.at[s, a, s_next].add(terminated.astype(jnp.float32)),
            )
        else:
            c = c.replace(
                next_state=c.next_state.at[s, a].set(s_next),
                reward=c.reward.at[s, a].set(r),
                terminal=c.terminal.at[s, a].set(terminated),
            )
        c = c.replace(
            q=c.q.at[s, a].add(config.alpha * (target - c.q[s, a])),
            # the row written back is the row read: the read then comes before the write, and
            # XLA updates the table in place instead of copying it
            tried=c.tried.at[s].set(tried_row.at[a].set(True)),
            last_tried=c.last_tried.at[s, a].set(c.t + 1),
            # a dropped write, not a select of two tables: XLA then updates it in place
            observed=c.observed.at[jnp.where(first_visit, c.num_observed, num_states)].set(
                s, mode="drop"),
            num_observed=c.num_observed + first_visit,
            obs=obs,
            env_state=env_state,
            t=c.t + 1,
            episodes=c.episodes + (terminated | truncated),
            cumulative_reward=c.cumulative_reward + r,
            key=key,
        )
        draws = jax.random.key_data(key_plan)
        if not isinstance(config.planning_steps, jax.core.Tracer) and config.planning_steps:
            # n known: every update's uniforms in one vectorised hash instead of n (the
            # same numbers: the draws are counter-based); a swept n draws them one by one
            draws = jax.vmap(counter_uniforms, in_axes=(None, 0, None))(
                draws, jnp.arange(config.planning_steps), num_uniforms)
        c, _ = jax.lax.fori_loop(0, config.planning_steps, planning_update, (c, draws))
        return c, r, terminated | truncated

    def evaluate(q: jax.Array, env_now, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Mean undiscounted return and length of greedy episodes on ``q`` (capped at
        eval_max_steps), a changing maze's walls as in ``env_now``."""

        def episode(key):
            key_reset, key_run = jax.random.split(key)
            obs, env_state = env.reset(key_reset, env_params)
            if hasattr(env_state, "total_steps"):  # a maze whose walls move: evaluate it as now
                env_state = env_state.replace(total_steps=env_now.total_steps)

            def cond(x):
                return ~x[4] & (x[3] < config.eval_max_steps)

            def body(x):
                obs, env_state, key, length, _, ret = x
                key, key_act, key_env = jax.random.split(key, 3)
                a = value.random_argmax(jax.random.uniform(key_act), q[env.obs_to_index(obs)])
                obs, env_state, r, term, trunc, _ = env.step(key_env, env_state, a, env_params)
                return obs, env_state, key, length + 1, term | trunc, ret + r

            init = (obs, env_state, key_run, jnp.zeros((), jnp.int32), jnp.zeros((), bool),
                    jnp.zeros(()))
            *_, length, _, ret = jax.lax.while_loop(cond, body, init)
            return ret, length

        returns, lengths = jax.vmap(episode)(jax.random.split(key, config.eval_episodes))
        return returns.mean(), lengths.mean()

    return Parts(init=init, real_step=real_step, evaluate=evaluate)


@struct.dataclass
class EpisodeRecord:
    """What an episode's metrics need, kept when it ends: the greedy evaluation runs later on
    ``q`` (so a run need not wait for its evaluation, see ``purembrl.loop.pool_episodes``)."""

    q: jax.Array
    env_state: Any
    env_steps: jax.Array
    key_eval: jax.Array
    length: jax.Array
    ret: jax.Array


def make_episode_loop(config: Config) -> EpisodeLoop | None:
    """An episode-mode run as an ``EpisodeLoop`` (``purembrl.loop``): one training episode per
    iteration, then a greedy evaluation on its final Q. ``None`` in step mode. The sweep
    runs these as a pool of runs that do not wait for each other (issue 24)."""
    if config.num_steps > 0:
        return None
    parts = make_parts(config)

    def begin(c: DynaQState) -> tuple[DynaQState, jax.Array]:
        key, key_eval = jax.random.split(c.key)
        return c.replace(key=key), key_eval

    def end(c: DynaQState, key_eval, length, ret) -> EpisodeRecord:
        return EpisodeRecord(q=c.q, env_state=c.env_state, env_steps=c.t, key_eval=key_eval,
                             length=length, ret=ret)

    def report(record: EpisodeRecord) -> dict[str, jax.Array]:
        eval_return, eval_length = parts.evaluate(record.q, record.env_state, record.key_eval)
        return {"steps_per_episode": record.length, "episode_return": record.ret,
                "env_steps": record.env_steps, "eval_return": eval_return,
                "eval_length": eval_length}

    return EpisodeLoop(init=parts.init, begin=begin, step=parts.real_step, end=end,
                       report=report, num_episodes=config.num_episodes)


def make_loop(config: Config) -> TrainLoop:
    """The Dyna-Q run as ``init`` / ``step`` (see ``purembrl.loop``)."""
    if config.num_steps == 0:
        return episodes_loop(make_episode_loop(config))
    init, real_step, evaluate = make_parts(config)

    def steps_step(length: int):
        """``length`` real steps, then one evaluation."""
        def step(c: DynaQState, iteration) -> tuple[DynaQState, dict[str, jax.Array]]:
            key, key_eval = jax.random.split(c.key)
            c = jax.lax.fori_loop(0, length, lambda i, c: real_step(c)[0], c.replace(key=key))
            eval_return, eval_length = evaluate(c.q, c.env_state, key_eval)
            return c, {"env_steps": c.t, "cumulative_reward": c.cumulative_reward,
                       "episodes": c.episodes, "eval_return": eval_return,
                       "eval_length": eval_length}

        return step

    n = config.num_iterations
    # evaluations every eval_every steps and at the end: the last period may be shorter
    full, tail = steps_step(config.eval_every), config.num_steps - (n - 1) * config.eval_every
    if tail == config.eval_every:
        return TrainLoop(init=init, step=full, num_iterations=n)
    last = steps_step(tail)
    return TrainLoop(init=init, num_iterations=n, step=lambda c, iteration: jax.lax.cond(
        iteration == n - 1, last, full, c, iteration))


def make_train(config: Config):
    """``train(key) -> (DynaQState, metrics)``; metrics have a leading iteration axis.

    Episode mode: ``steps_per_episode``, ``episode_return``, ``env_steps``, ``eval_return``,
    ``eval_length``, each ``[num_episodes]``. Step mode: ``env_steps``, ``cumulative_reward``,
    ``episodes``, ``eval_return``, ``eval_length``, each ``[num_steps // eval_every]``.
    """
    return as_train(make_loop(config))


def curve(config: Config) -> tuple[str, str]:
    """(x, y) of the learning curve the driver plots: x is a metric name or ``"iteration"``."""
    if config.num_steps > 0:
        return "env_steps", "cumulative_reward"
    return "episode", "steps_per_episode"


def policy(state: DynaQState, config: Config):
    """The learned greedy policy as a pure function ``(key, obs [B, ...]) -> action [B]``
    (random tie-breaking), the signature of every algorithm's ``policy(state, config)``."""
    env, _ = envs.make(config.env, config.env_params)

    def act(key, obs):
        return value.random_argmax(jax.random.uniform(key),
                             state.q[env.obs_to_index(obs.astype(jnp.int32))])

    return lambda key, obs: jax.vmap(act)(jax.random.split(key, obs.shape[0]), obs)
