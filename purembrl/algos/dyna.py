"""Deep Dyna with expected targets (the notes' "Dyna" with a learned one-step model, T = 1).

Sutton 1990's Dyna with a neural model, as the notes put it: every learner update takes (s, a)
from the replay buffer of real transitions, draws ``num_next_samples`` (K) next states (with
rewards and terminations) from the learned probabilistic ensemble, and regresses Q(s, a) on the
*average* target over them, ``mean_k r_k + g (1 - d_k) V(s'_k)`` (``value.expected_target``;
the learners of ``purembrl.learners`` take such K-sample batches). The expectation over s' is
estimated from many model samples instead of the single real one; the real s' is not used by
the learner at all.

    initial_random_steps uniformly random real steps into the replay buffer
    every model_train_freq steps:  fit the ensemble on the replay buffer (purembrl.dynamics)
      every step:                  act, store the real transition, take updates_per_step (G)
                                   updates on (s, a) from replay with K model samples of s'
    every eval_every steps:        evaluate the deterministic policy

(the loop is ``purembrl.model_loop``'s, shared with MBVE; this file is its update).

SAC for continuous actions, double DQN (epsilon-greedy) for discrete ones, chosen by the env's
action space. Fields left ``None`` come from ``PRESETS[env]``, else ``GENERIC``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, dynamics, envs, interact
from purembrl.config import check_model_schedule, resolve_presets, static
from purembrl.envs import known
from purembrl.learners import (
    DQNConfig,
    SACConfig,
    for_env,
    resolve_learner,
)
from purembrl.loop import TrainLoop, as_train
from purembrl.model_loop import ModelLoopState, make_model_loop
from purembrl.types import Transition

ENVS = ("Pendulum-v1", "CartPole-v1", "MountainCarContinuous-v0", "Acrobot-v1")

PRESETS = {
    # Pendulum: the MBPO preset's model and SAC (benchmarks/mbpo_pendulum.py), G = 10 updates
    # per step of K = 5 model samples each (a K-sample update costs about K one-sample
    # target computations), the known termination (never), the reward learned.
    "Pendulum-v1": dict(
        total_steps=3000, eval_every=250, initial_random_steps=250, buffer_size=100_000,
        batch_size=256, updates_per_step=10, num_next_samples=5, model_train_freq=250,
        known_termination=True,
        sac=SACConfig(hidden_sizes=(128, 128), activation="swish", actor_lr=1e-3,
                      critic_lr=1e-3, alpha_lr=1e-3, tau=0.02)),
    # CartPole: double DQN with the known termination function and a learned model.
    "CartPole-v1": dict(
        total_steps=10_500, eval_every=500, initial_random_steps=500, buffer_size=100_000,
        batch_size=128, updates_per_step=2, num_next_samples=5, model_train_freq=250,
        known_termination=True,
        dqn=DQNConfig(hidden_sizes=(128, 128), target_update="periodic", target_period=200,
                      eps_decay_steps=5000)),
}
# Other gymnax envs: MBPO's generic model schedule (refit every 250 steps after 1000 random
# steps) with 10 updates per step of 5 samples each.
GENERIC = dict(
    total_steps=21_000, eval_every=1000, initial_random_steps=1000, buffer_size=1_000_000,
    batch_size=256, updates_per_step=10, num_next_samples=5, model_train_freq=250,
    known_termination=False)


@struct.dataclass
class Config:
    """Deep Dyna settings; ``None`` fields come from ``PRESETS[env]``, else ``GENERIC``.

    Attributes:
      env: a gymnax environment with flat observations.
      learner: ``"auto"`` (SAC for continuous actions, DQN for discrete), ``"sac"`` or ``"dqn"``.
      total_steps: real steps, ``initial_random_steps`` included.
      eval_every / eval_episodes: evaluation period (a multiple of ``model_train_freq``) and size.
      initial_random_steps: uniformly random steps before anything is learned.
      buffer_size: replay capacity. batch_size: (s, a) pairs per update. updates_per_step: G.
      num_next_samples: K, model samples of s' per (s, a) (the expectation's sample size).
      model_train_freq: steps between model fits.
      known_reward / known_termination: ``purembrl.envs.known``'s functions instead of learned.
      model: the ensemble. sac / dqn: the learner's hyperparameters.
      normalize_obs: the learner trains and acts on running-normalised observations
        (``purembrl.learners.normalize_observations``; the model normalises its own inputs).
    """

    env: str = static("Pendulum-v1")
    learner: str = static("auto")
    total_steps: int | None = static(None)
    eval_every: int | None = static(None)
    eval_episodes: int = static(10)
    initial_random_steps: int | None = static(None)
    buffer_size: int | None = static(None)
    batch_size: int | None = static(None)
    updates_per_step: int | None = static(None)
    num_next_samples: int | None = static(None)
    model_train_freq: int | None = static(None)
    known_reward: bool = static(False)
    known_termination: bool | None = static(None)
    model: dynamics.EnsembleConfig = dynamics.EnsembleConfig()
    sac: SACConfig | None = None
    dqn: DQNConfig | None = None
    normalize_obs: bool = static(False)

    def __post_init__(self):
        resolve_presets(self, PRESETS, GENERIC)
        env, env_params = envs.make(self.env)
        discrete = interact.spec(env, env_params).discrete
        resolve_learner(self, discrete)
        check_model_schedule(self, counts=("num_next_samples",),
                             non_negative=("updates_per_step",))
        known.check(self.env, self.known_reward, self.known_termination)

    @property
    def num_iterations(self) -> int:
        return (self.total_steps - self.initial_random_steps) // self.eval_every


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


def make_loop(config: Config) -> TrainLoop:
    env, env_params = envs.make(config.env)
    learner = for_env(config.learner, config.sac, config.dqn, interact.spec(env, env_params),
                      config.normalize_obs)
    model_config, reward_fn, termination_fn = known.model_functions(config)

    def explore(learner_state, key, obs, env_steps):
        return learner.act(learner_state, key, obs, True, env_steps - config.initial_random_steps)

    def update(learner_state, replay, model_step, key):
        """One update on real (s, a) with K model draws of (r, s', d) each."""
        key_batch, key_model, key_learn = jax.random.split(key, 3)
        real = buffer.sample(replay, key_batch, config.batch_size)
        batch = model_batch(model_step, key_model, real, config.num_next_samples)
        return learner.update(learner_state, batch, key_learn)

    return make_model_loop(
        config, env, env_params, learner, model_config, update, explore,
        reward_fn=reward_fn, termination_fn=termination_fn)


def make_train(config: Config):
    """``train(key) -> (ModelLoopState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length``, the model's holdout MSE and non-finite flag, and the
    learner's losses."""
    return as_train(make_loop(config))


def policy(state: ModelLoopState, config: Config):
    """The trained deterministic policy as a pure function ``(key, obs [B, d]) -> action``."""
    env, env_params = envs.make(config.env)
    learner = for_env(config.learner, config.sac, config.dqn,
                      interact.spec(env, env_params), config.normalize_obs)
    return lambda key, obs: learner.act(state.learner, key, obs, explore=False)
