"""Soft actor-critic (Haarnoja et al. 2018), model-free, fully jitted: the baseline for MBPO.

``initial_random_steps`` uniformly random steps fill the replay buffer; then each environment step
samples an action from the policy, stores the transition and takes ``updates_per_step`` SAC
updates on uniform minibatches. Every ``eval_every`` steps the deterministic policy tanh(mean)
is evaluated on ``eval_episodes`` fresh episodes.

``Config()`` is the paper's setting; ``Config.for_env("Pendulum-v1")`` the tuned Pendulum
preset (``PRESETS``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, envs, interact, learners
from purembrl.config import Presets, check_batch_fits, check_budget, check_int, static
from purembrl.learners import SACConfig
from purembrl.loop import TrainLoop, as_train

ENVS = ("Pendulum-v1", "MountainCarContinuous-v0")

# Pendulum: a strong baseline rather than the paper's MuJoCo defaults (which learn Pendulum
# slowly): 256 x 256 swish, Adam 1e-3, tau 0.02, one update per step, 1000 random steps (five
# 200-step episodes). Tuned on this library's Pendulum runs (see benchmarks/RESULTS.md).
PRESETS = {
    "Pendulum-v1": dict(total_steps=10_000, eval_every=1000, initial_random_steps=1000,
                        buffer_size=100_000, batch_size=256, updates_per_step=1,
                        learner=SACConfig(hidden_sizes=(256, 256), activation="swish",
                                          actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3,
                                          tau=0.02)),
}


@struct.dataclass
class Config(Presets):
    """SAC run settings; ``Config.for_env(env)`` starts from ``PRESETS[env]``.

    Attributes:
      env: a gymnax environment with a continuous (Box) action space.
      total_steps: environment steps in the run, ``initial_random_steps`` included.
      eval_every: environment steps between evaluations.
      eval_episodes: episodes per evaluation.
      initial_random_steps: uniformly random steps before learning.
      buffer_size: replay capacity. batch_size: minibatch. updates_per_step: G.
      learner: the learner's hyperparameters (``purembrl.learners.SACConfig``).
      normalize_obs: train and act on running-normalised observations
        (``purembrl.learners.normalize_observations``).
    """

    PRESETS = PRESETS

    env: str = static("Pendulum-v1")
    total_steps: int = static(100_000)
    eval_every: int = static(5000)
    eval_episodes: int = static(10)
    initial_random_steps: int = static(5000)
    buffer_size: int = static(1_000_000)
    batch_size: int = static(256)
    updates_per_step: int = static(1)
    normalize_obs: bool = static(False)
    learner: SACConfig = SACConfig()

    def __post_init__(self):
        envs.check_name(self.env)
        check_int("total_steps", self.total_steps, 1)
        check_int("eval_every", self.eval_every, 1)
        check_int("eval_episodes", self.eval_episodes, 1)
        check_int("initial_random_steps", self.initial_random_steps, 1)
        check_int("buffer_size", self.buffer_size, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("updates_per_step", self.updates_per_step, 0)
        check_batch_fits(self.batch_size, self.buffer_size)
        check_budget(self.total_steps, self.initial_random_steps, "initial_random_steps",
                     self.eval_every)

    @property
    def num_iterations(self) -> int:
        return (self.total_steps - self.initial_random_steps) // self.eval_every


@struct.dataclass
class SACRunState:
    learner: object
    replay: buffer.BufferState
    obs: jax.Array
    env_state: object
    env_steps: jax.Array
    key: jax.Array


def make_loop(config: Config) -> TrainLoop:
    env, env_params = envs.make(config.env)
    env_spec = interact.spec(env, env_params)
    if env_spec.discrete:
        raise ValueError(f"env={config.env!r} is invalid: SAC needs a continuous action space "
                         "(use dqn for discrete actions)")
    learner = learners.make(config.learner, env_spec, config.normalize_obs)

    def init(key):
        key_learner, key_reset, key_warm, key_run = jax.random.split(key, 4)
        obs, env_state = env.reset(key_reset, env_params)
        replay = buffer.init(interact.example_transition(env_spec), config.buffer_size)
        obs, env_state, replay = interact.warmup(env, env_params, key_warm, env_state,
                                                 obs.astype(jnp.float32), replay,
                                                 config.initial_random_steps)
        return SACRunState(learner=learner.init(key_learner), replay=replay, obs=obs,
                           env_state=env_state,
                           env_steps=jnp.full((), config.initial_random_steps, jnp.int32),
                           key=key_run)

    def train_step(carry, key):
        key_act, key_env, key_update = jax.random.split(key, 3)
        action = learner.act(carry.learner, key_act, carry.obs[None])[0]
        obs, env_state, replay = interact.step_into(env, env_params, key_env, carry.env_state,
                                                    carry.obs, action, carry.replay)

        def update(state, k):
            key_sample, key_learn = jax.random.split(k)
            batch = buffer.sample(replay, key_sample, config.batch_size)
            return learner.update(state, batch, key_learn)

        learner_state, info = jax.lax.scan(
            update, carry.learner, jax.random.split(key_update, config.updates_per_step))
        carry = carry.replace(learner=learner_state, replay=replay, obs=obs,
                              env_state=env_state, env_steps=carry.env_steps + 1)
        return carry, jax.tree.map(jnp.mean, info)

    def step(carry):
        key, key_steps, key_eval = jax.random.split(carry.key, 3)
        carry, info = jax.lax.scan(train_step, carry.replace(key=key),
                                   jax.random.split(key_steps, config.eval_every))
        policy = lambda k, obs: learner.act(carry.learner, k, obs, explore=False)
        eval_return, eval_length = interact.evaluate(env, env_params, policy, key_eval,
                                                     config.eval_episodes, env_spec.max_steps)
        metrics = {"env_steps": carry.env_steps, "eval_return": eval_return,
                   "eval_length": eval_length, **jax.tree.map(jnp.mean, info)}
        return carry, metrics

    return TrainLoop(init=init, step=step, num_iterations=config.num_iterations)


def make_train(config: Config):
    """``train(key) -> (SACRunState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length`` and the learner's mean losses over each interval."""
    return as_train(make_loop(config))


def policy(state: SACRunState, config: Config):
    """The trained deterministic policy as a pure function ``(key, obs [B, d]) -> action``."""
    env, env_params = envs.make(config.env)
    env_spec = interact.spec(env, env_params)
    learner = learners.make(config.learner, env_spec, config.normalize_obs)
    return learners.policy(learner, state.learner)
