"""Model-based acceleration, MBA: NAF with imagination rollouts from a learned model.

Gu, Lillicrap, Sutskever & Levine 2016, "Continuous Deep Q-Learning with Model-based
Acceleration", Algorithm 2.

The learner is NAF (``purembrl.learners.make_naf``): Q(s, a) = V(s) - 1/2 (a - mu(s))^T P(s)
(a - mu(s)), so the greedy action is mu(s) in closed form. Imagination rollouts: short rollouts
of the exploration policy mu + noise through a learned model, branched from real states of the
replay buffer, fill a separate buffer of fictional transitions; each real step takes
``imagination_updates`` (I) updates on fictional minibatches and ``real_updates`` (R) on real
ones, as in the paper's algorithm. The paper fits time-varying linear models (and found neural
models harder to profit from); the model here is the probabilistic ensemble of
``purembrl.dynamics``. ``imagination_updates=0`` switches the model off: plain NAF, the
"NAF without imagination" baseline, from the same code.

The loop is ``purembrl.offpolicy``'s with a fit and a branch (MBPO's shape):

    initial_random_steps uniformly random real steps into the replay buffer
    every model_train_freq steps:  fit the ensemble on the replay buffer
      every rollout_freq steps:    rollouts_per_step * rollout_freq imagination rollouts of
                                   rollout_length steps into the fictional buffer
        every step:                act (mu + noise), store the real transition, take I NAF
                                   updates on fictional data, then R on real data
    every eval_every steps:        evaluate the greedy policy mu(s)

The fictional buffer keeps the rollouts of the last ``imagination_retain_steps`` env steps.
Continuous actions only (a discrete env is a ``ValueError`` when training is built).
``Config()`` is the generic setting; ``Config.for_env(env, **overrides)`` starts from
``PRESETS[env]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, envs, interact, learners, offpolicy
from purembrl.algos.base import ModelBasedConfig
from purembrl.config import check_episode_horizon, static
from purembrl.envs import known
from purembrl.learners import NAFConfig
from purembrl.loop import TrainLoop, as_train
from purembrl.offpolicy import OffPolicyState

ENVS = ("Pendulum-v1", "MountainCarContinuous-v0")

PRESETS = {
    # Pendulum: the MBPO preset's budget, model and schedule (refit every 250 steps after 250
    # random steps); 5 real and 10 imagined updates per step; 50 rollouts per step of length 5
    # (imagination is short, as the paper advises for learned models). NAF 256 x 256 swish with
    # exploration noise 0.6: the best of a 4-seed sweep of NAF alone (benchmarks/RESULTS.md);
    # mu_bound_penalty 1 keeps mu in the bounds, which stops the advantage collapse
    # (NAFConfig; RESULTS.md, "MBA's advantage collapse").
    "Pendulum-v1": dict(
        total_steps=3000, eval_every=250, initial_random_steps=250, buffer_size=100_000,
        batch_size=128, real_updates=5, imagination_updates=10, model_train_freq=250,
        rollout_freq=250, rollouts_per_step=50, rollout_length=5,
        imagination_retain_steps=250, known_termination=True,
        learner=NAFConfig(hidden_sizes=(256, 256), activation="swish", exploration_noise=0.6,
                          mu_bound_penalty=1.0)),
}


@struct.dataclass
class Config(ModelBasedConfig):
    """MBA settings. The defaults are MBPO's generic model schedule, one real and five
    imagined updates per step, rollouts of length 5; ``Config.for_env(env)`` starts from
    ``PRESETS[env]``.

    The fields of ``purembrl.algos.base.ModelBasedConfig`` (``batch_size``: the minibatch of
    every update), and:

    Attributes:
      env: a gymnax environment with flat observations and continuous actions.
      real_updates: R, NAF updates on real data per env step.
      imagination_updates: I, NAF updates on fictional data per env step (0: no model).
      rollout_freq: steps between rollout batches. rollouts_per_step: rollouts branched per
        env step.
      rollout_length: imagined steps per rollout (at most the env's episode length).
      imagination_retain_steps: env steps whose rollouts the fictional buffer keeps.
      rollout_chunk: most start states rolled out at once (bounds memory only).
      true_dynamics: imagine through the env's true dynamics (``known.true_model_step``)
        instead of the fitted ensemble: a diagnostic that isolates NAF from the model's errors.
      learner: NAF's hyperparameters (MBA is NAF with imagination).
    """

    PRESETS = PRESETS

    batch_size: int = static(128)
    real_updates: int = static(1)
    imagination_updates: int = static(5)
    rollout_freq: int = static(250)
    rollouts_per_step: int = static(50)
    rollout_length: int = static(5)
    imagination_retain_steps: int = static(1000)
    rollout_chunk: int = static(10_000)
    true_dynamics: bool = static(False)
    learner: NAFConfig = NAFConfig()

    def __post_init__(self):
        # first, so the reason is given (the type check would only name the class)
        if not isinstance(self.learner, NAFConfig):
            raise ValueError(f"learner={type(self.learner).__name__} is invalid for MBA: "
                             "allowed NAFConfig (MBA is NAF with imagination rollouts)")
        self.check(counts=("rollouts_per_step", "rollout_length", "imagination_retain_steps",
                           "rollout_chunk"),
                   non_negative=("real_updates", "imagination_updates"))

    @property
    def model_on(self) -> bool:
        return self.imagination_updates > 0

    @property
    def imagination_buffer_size(self) -> int:
        """Rollouts of the last ``imagination_retain_steps`` steps, in whole rollout batches."""
        batches = math.ceil(self.imagination_retain_steps / self.rollout_freq)
        return batches * self.rollout_freq * self.rollouts_per_step * self.rollout_length


def _learner(config: Config, env_spec):
    """NAF for the env, wrapped in observation normalisation when the config asks;
    ``ValueError`` for an env MBA cannot run on."""
    if env_spec.discrete:
        raise ValueError(f"env={config.env!r} is invalid for MBA: its actions are discrete "
                         "(allowed: an env with continuous actions; NAF's greedy action is "
                         "the mean of a quadratic in a)")
    check_episode_horizon("rollout_length", config.rollout_length, env_spec.max_steps)
    return learners.make(config.learner, env_spec, config.normalize_obs)


def make_parts(config: Config) -> offpolicy.Parts:
    """The loop's pieces (``purembrl.offpolicy.Parts``): init, model fit, one rollout batch,
    one real step and its updates, to time apart or recompose."""
    env, env_params = envs.make(config.env, config.env_params)
    learner = _learner(config, interact.spec(env, env_params))
    model_config, reward_fn, termination_fn = known.model_functions(config)

    def imagined_update(learner_state, state: OffPolicyState, key):
        key_batch, key_learn = jax.random.split(key)
        batch = buffer.sample_mixed(state.replay, state.model_buffer, key_batch, 0,
                                    config.batch_size)
        return learner.update(learner_state, batch, key_learn)

    def real_update(learner_state, state: OffPolicyState, key):
        key_batch, key_learn = jax.random.split(key)
        return learner.update(learner_state, buffer.sample(state.replay, key_batch,
                                                           config.batch_size), key_learn)

    imagined = offpolicy.repeated(imagined_update, config.imagination_updates)
    real = offpolicy.repeated(real_update, config.real_updates)

    def updates(state: OffPolicyState, key):
        """I updates on fictional minibatches, then R on real ones (Algorithm 2's order)."""
        key_imagined, key_real = jax.random.split(key)
        info = {}
        if config.imagination_updates:
            state, imagined_info = imagined(state, key_imagined)
            info["imagined_q_loss"] = imagined_info["q_loss"]
        if config.real_updates:
            state, real_info = real(state, key_real)
            info.update(real_info)
        return state, info

    rollouts = offpolicy.Rollouts(
        buffer_size=config.imagination_buffer_size, on=config.model_on,
        horizon=lambda env_steps: jnp.int32(config.rollout_length),
        max_horizon=config.rollout_length, reward_fn=reward_fn, termination_fn=termination_fn,
        model_step=known.true_model_step(config.env) if config.true_dynamics else None)
    return offpolicy.make_parts(config, env, env_params, learner, updates,
                                model_config=model_config,
                                fit=config.model_on and not config.true_dynamics,
                                rollouts=rollouts)


def make_loop(config: Config) -> TrainLoop:
    return offpolicy.make_loop(config, make_parts(config))


def make_train(config: Config):
    """``train(key) -> (OffPolicyState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length``, the fictional buffer's size, the model's holdout MSE,
    epochs and non-finite flag, rollout counts, NAF's loss on real (``q_loss``) and fictional
    (``imagined_q_loss``) minibatches, ``q_mean`` and ``v_mean``."""
    return as_train(make_loop(config))


def policy(state: OffPolicyState, config: Config):
    """The trained greedy policy mu(s) as a pure function ``(key, obs [B, d]) -> action``."""
    return offpolicy.trained_policy(state, config)
