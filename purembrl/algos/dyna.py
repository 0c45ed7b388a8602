"""Deep Dyna with expected targets (the notes' "Dyna" with a learned one-step model, T = 1).

Sutton 1990's Dyna with a neural model, as the notes put it: every learner update takes (s, a)
from the replay buffer of real transitions, draws ``num_next_samples`` (K) next states (with
rewards and terminations) from the learned probabilistic ensemble, and regresses Q(s, a) on the
*average* target over them, ``mean_k r_k + g (1 - d_k) V(s'_k)`` (``value.expected_target``;
the learners of ``purembrl.learners`` take such K-sample batches). The expectation over s' is
estimated from many model samples instead of the single real one; the real s' is not used by
the learner at all.

With ``n_step`` = n > 1 (DQN learners) the target of (s_t, a_t) follows the real stream for up
to n - 1 steps and takes the model's expectation over the last step's next state:
``sum_{j<m-1} g^j r_{t+j} + g^(m-1) mean_k [r_k + g (1 - d_k) V(s'_k)]``, with (r_k, s'_k, d_k)
drawn from the model at (s_{t+m-1}, a_{t+m-1}) and m <= n cut at an episode's end
(``buffer.sample_n_step_head``). It is an n-step return (Sutton & Barto 2018, Section 7.1)
whose last transition is Dyna's expectation; n = 1 is the one-step target above.

    initial_random_steps uniformly random real steps into the replay buffer
    every model_train_freq steps:  fit the ensemble on the replay buffer (purembrl.dynamics)
      every step:                  act, store the real transition, take updates_per_step (G)
                                   updates on (s, a) from replay with K model samples of s'
    every eval_every steps:        evaluate the deterministic policy

(the loop is ``purembrl.offpolicy``'s with a fit and no branch; this file is its updates).

The learner is any registered one (``purembrl.learners``); left ``None`` it is SAC for
continuous actions and double DQN (epsilon-greedy) for discrete ones, by the env's action space.
``Config()`` is the generic setting; ``Config.for_env(env, **overrides)`` starts from
``PRESETS[env]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, dynamics, envs, interact, learners, offpolicy
from purembrl.algos.base import ModelBasedConfig
from purembrl.config import static
from purembrl.envs import known
from purembrl.learners import DQNConfig, LearnerConfig, SACConfig
from purembrl.loop import TrainLoop, as_train
from purembrl.offpolicy import OffPolicyState
from purembrl.types import Transition

ENVS = ("Pendulum-v1", "NoisyPendulum-v1", "CartPole-v1", "MountainCarContinuous-v0",
        "Acrobot-v1")

PRESETS = {
    # Pendulum: the MBPO preset's model and SAC (benchmarks/mbpo_pendulum.py), G = 10 updates
    # per step of K = 5 model samples each (a K-sample update costs about K one-sample
    # target computations), the known termination (never), the reward learned.
    "Pendulum-v1": dict(
        total_steps=3000, eval_every=250, initial_random_steps=250, buffer_size=100_000,
        batch_size=256, updates_per_step=10, num_next_samples=5, model_train_freq=250,
        known_termination=True,
        learner=SACConfig(hidden_sizes=(128, 128), activation="swish", actor_lr=1e-3,
                          critic_lr=1e-3, alpha_lr=1e-3, tau=0.02)),
    # CartPole: double DQN with the known termination function and a learned model; 10-step
    # heads (the real return of 9 steps, then the model's expectation) and every action planned
    # at the replayed states (``all_actions``): 8 of 8 seeds reach 475 within 10k steps on key
    # 0 and 7 of 8 on key 1 (benchmarks/RESULTS.md, "Planning every action"; the one-step
    # setting before it: 1 of 8).
    "CartPole-v1": dict(
        total_steps=10_500, eval_every=500, initial_random_steps=500, buffer_size=100_000,
        batch_size=128, updates_per_step=2, num_next_samples=5, model_train_freq=250,
        known_termination=True, n_step=10, all_actions=True,
        learner=DQNConfig(hidden_sizes=(128, 128), target_update="periodic",
                          target_period=200, eps_decay_steps=5000)),
}
# Pendulum with noise on each next angular velocity (``envs.NoisyPendulum``): Pendulum's preset.
PRESETS["NoisyPendulum-v1"] = PRESETS["Pendulum-v1"]


@struct.dataclass
class Config(ModelBasedConfig):
    """Deep Dyna settings. The defaults are MBPO's generic model schedule (refit every 250
    steps after 1000 random steps) with 10 updates per step of 5 samples each;
    ``Config.for_env(env)`` starts from ``PRESETS[env]``.

    The fields of ``purembrl.algos.base.ModelBasedConfig`` (``batch_size``: (s, a) pairs per
    update), and:

    Attributes:
      updates_per_step: G, learner updates per env step.
      num_next_samples: K, model samples of s' per (s, a) (the expectation's sample size).
      n_step: real steps in each target before the model's expectation over the last one's
        next state (the module docstring); DQN learners only; 1: one-step targets.
      all_actions: discrete actions only: each update also regresses Q(s, a') for every
        action a' that the replayed pair did not take, at the same states, on the model's
        K-draw one-step expectation. Planning from actions the behaviour never took is what
        a model offers and replay cannot (Dyna-Q+ plans untried actions, Sutton & Barto 2018,
        Section 8.3); the minibatch grows from B to B * A pairs.
      true_dynamics: draw the K next states from the env's true dynamics
        (``known.true_model_step``) instead of the fitted ensemble: a diagnostic, what a perfect
        model would give.
      learner: the learner's config (any registered in ``purembrl.learners``); ``None``: the
        default for the env's action space (``learners.DEFAULTS``).
    """

    PRESETS = PRESETS

    updates_per_step: int = static(10)
    num_next_samples: int = static(5)
    n_step: int = static(1)
    all_actions: bool = static(False)
    true_dynamics: bool = static(False)
    learner: LearnerConfig | None = None

    def __post_init__(self):
        self.check(counts=("num_next_samples", "n_step"), non_negative=("updates_per_step",))


def model_batch(model_step, key: jax.Array, real: Transition, num_samples: int) -> Transition:
    """(s, a) of a real batch with ``num_samples`` model draws of (r, s', d) each:
    ``reward``, ``terminated`` ``[B, K]`` and ``next_obs`` ``[B, K, obs_dim]``."""
    B = real.obs.shape[0]
    obs = jnp.repeat(real.obs, num_samples, axis=0)
    action = jnp.repeat(real.action, num_samples, axis=0)
    next_obs, reward, terminated = model_step(key, obs, action)
    return Transition(obs=real.obs, action=real.action,
                      reward=reward.reshape(B, num_samples),
                      next_obs=next_obs.reshape(B, num_samples, -1),
                      terminated=terminated.reshape(B, num_samples))


def n_step_batch(model_step, key: jax.Array, head: Transition, last: Transition,
                 num_samples: int, gamma: float) -> Transition:
    """The K-sample batch of n-step targets from ``buffer.sample_n_step_head``'s split: (s, a)
    of ``head``, ``reward`` ``[B, K]`` = head's real return + gamma^(m-1) r_k, the K model draws
    of s' and d from the last step's (s, a), and ``discount`` ``[B]`` = gamma^m, so that the
    learner's expected target is ``head.reward + gamma^(m-1) mean_k [r_k + gamma (1 - d_k)
    V(s'_k)]``."""
    drawn = model_batch(model_step, key, last, num_samples)
    return Transition(obs=head.obs, action=head.action,
                      reward=head.reward[:, None] + head.discount[:, None] * drawn.reward,
                      next_obs=drawn.next_obs, terminated=drawn.terminated,
                      discount=head.discount * jnp.float32(gamma))


def other_actions_batch(model_step, key: jax.Array, taken: Transition, num_actions: int,
                        num_samples: int, gamma: float | None) -> Transition:
    """One-step K-sample batch at ``taken``'s states for every action it did not take:
    ``[B * (A - 1)]`` pairs, the j-th block acting ``(a + j) mod A``. ``gamma``: the
    ``discount`` field to give them (``None``: leave it unset, the learner's gamma)."""
    shifts = jnp.arange(1, num_actions, dtype=taken.action.dtype)
    action = ((taken.action[None, :] + shifts[:, None]) % num_actions).reshape(-1)
    obs = jnp.tile(taken.obs, (num_actions - 1, 1))
    drawn = model_batch(model_step, key, Transition(obs=obs, action=action, reward=None,
                                                    next_obs=None, terminated=None),
                        num_samples)
    if gamma is None:
        return drawn
    return drawn.replace(discount=jnp.full(obs.shape[:1], gamma, jnp.float32))


def make_loop(config: Config) -> TrainLoop:
    env, env_params = envs.make(config.env, config.env_params)
    env_spec = interact.spec(env, env_params)
    learner = learners.make(config.learner, env_spec, config.normalize_obs)
    learner_config = config.learner or learners.default_config(env_spec)
    if config.n_step > 1 and not isinstance(learner_config, DQNConfig):
        raise ValueError(f"n_step={config.n_step} is invalid: n-step returns are implemented "
                         f"for DQN learners only, not {type(learner_config).__name__}")
    model_config, reward_fn, termination_fn = known.model_functions(config)
    true_step = known.true_model_step(config.env) if config.true_dynamics else None
    if config.all_actions and not env_spec.discrete:
        raise ValueError(f"all_actions=True is invalid for {config.env}: it plans every "
                         "action of a discrete action space, and this env's are continuous")

    def updates(state: OffPolicyState, key):
        """G updates on real (s, a) with K model draws of (r, s', d) each."""
        model_step = true_step or dynamics.make_model_step(
            state.model, model_config, reward_fn=reward_fn, termination_fn=termination_fn)

        def update(learner_state, state: OffPolicyState, key):
            key_batch, key_model, key_learn = jax.random.split(key, 3)
            if config.n_step == 1:
                real = buffer.sample(state.replay, key_batch, config.batch_size)
                batch = model_batch(model_step, key_model, real, config.num_next_samples)
            else:
                head, last = buffer.sample_n_step_head(state.replay, key_batch,
                                                       config.batch_size, config.n_step,
                                                       learner_config.gamma)
                batch = n_step_batch(model_step, key_model, head, last, config.num_next_samples,
                                     learner_config.gamma)
            if config.all_actions:
                key_model, key_other = jax.random.split(key_model)
                other = other_actions_batch(
                    model_step, key_other, batch, env_spec.num_actions, config.num_next_samples,
                    None if batch.discount is None else learner_config.gamma)
                batch = jax.tree.map(lambda x, y: jnp.concatenate([x, y]), batch, other)
            return learner.update(learner_state, batch, key_learn)

        return offpolicy.repeated(update, config.updates_per_step)(state, key)

    return offpolicy.make_loop(config, offpolicy.make_parts(
        config, env, env_params, learner, updates, model_config=model_config,
        fit=not config.true_dynamics, episode_end=config.n_step > 1))


def make_train(config: Config):
    """``train(key) -> (OffPolicyState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length``, the model's holdout MSE and non-finite flag, and the
    learner's losses."""
    return as_train(make_loop(config))


def policy(state: OffPolicyState, config: Config):
    """The trained deterministic policy as a pure function ``(key, obs [B, d]) -> action``."""
    return offpolicy.trained_policy(state, config)
