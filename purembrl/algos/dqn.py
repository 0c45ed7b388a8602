"""DQN with double-Q targets (Mnih et al. 2015; van Hasselt et al. 2016), fully jitted.

The model-free baseline of MBPO's discrete variant.

``initial_random_steps`` uniformly random steps fill the replay buffer; then each environment step
acts epsilon-greedily (the learner's schedule, ``DQNConfig.eps_*``, counted from
``initial_random_steps``), stores the transition and takes
``updates_per_step`` DQN updates every ``train_every`` steps (a replay ratio below one update
per step, as in purejaxrl's and CleanRL's DQN, needs ``train_every > 1``). Every
``eval_every`` steps the greedy policy is evaluated on ``eval_episodes`` fresh episodes.

``Config()`` is the generic setting; ``Config.for_env("CartPole-v1")`` the tuned CartPole
preset (``PRESETS``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, envs, interact, learners
from purembrl.config import Presets, check_batch_fits, check_budget, check_int, static
from purembrl.learners import DQNConfig
from purembrl.loop import TrainLoop, as_train

ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")

# CartPole: 128 x 128 ReLU, Adam 1e-3 with gradient clipping 10, double-Q, Huber, target copied
# every 200 updates, batch 128, one update per step, epsilon 1 -> 0.05 over 10k steps after 1000
# random steps. Chosen among a few settings tried on this library (Polyak tau 0.005-0.02
# diverged); it is not yet reliable at reaching 475 (see benchmarks/RESULTS.md).
PRESETS = {
    "CartPole-v1": dict(total_steps=51_000, eval_every=5000, initial_random_steps=1000,
                        buffer_size=50_000, batch_size=128, updates_per_step=1,
                        learner=DQNConfig(hidden_sizes=(128, 128), target_update="periodic",
                                          target_period=200, eps_decay_steps=10_000)),
}


@struct.dataclass
class Config(Presets):
    """DQN run settings; ``Config.for_env(env)`` starts from ``PRESETS[env]``.

    Attributes:
      env: a gymnax environment with a discrete action space.
      total_steps: environment steps in the run, ``initial_random_steps`` included.
      eval_every: environment steps between evaluations.
      eval_episodes: episodes per evaluation.
      initial_random_steps: uniformly random steps before learning.
      buffer_size: replay capacity. batch_size: minibatch. updates_per_step: G.
      train_every: environment steps between learner updates (G updates each time).
      learner: the learner's hyperparameters (``purembrl.learners.DQNConfig``).
      normalize_obs: the learner trains and acts on running-normalised observations
        (``purembrl.learners.normalize_observations``).
    """

    PRESETS = PRESETS

    env: str = static("CartPole-v1")
    total_steps: int = static(100_000)
    eval_every: int = static(5000)
    eval_episodes: int = static(10)
    initial_random_steps: int = static(5000)
    buffer_size: int = static(100_000)
    batch_size: int = static(64)
    updates_per_step: int = static(1)
    train_every: int = static(1)
    learner: DQNConfig = DQNConfig(eps_decay_steps=20_000)
    normalize_obs: bool = static(False)

    def __post_init__(self):
        envs.check_name(self.env)
        check_int("total_steps", self.total_steps, 1)
        check_int("eval_every", self.eval_every, 1)
        check_int("eval_episodes", self.eval_episodes, 1)
        check_int("initial_random_steps", self.initial_random_steps, 1)
        check_int("buffer_size", self.buffer_size, 1)
        check_int("batch_size", self.batch_size, 1)
        check_batch_fits(self.batch_size, self.buffer_size)
        check_int("updates_per_step", self.updates_per_step, 0)
        check_int("train_every", self.train_every, 1)
        check_budget(self.total_steps, self.initial_random_steps, "initial_random_steps",
                     self.eval_every)

    @property
    def num_iterations(self) -> int:
        return (self.total_steps - self.initial_random_steps) // self.eval_every


@struct.dataclass
class DQNRunState:
    learner: object
    replay: buffer.BufferState
    obs: jax.Array
    env_state: object
    env_steps: jax.Array
    key: jax.Array


def make_loop(config: Config) -> TrainLoop:
    env, env_params = envs.make(config.env)
    env_spec = interact.spec(env, env_params)
    if not env_spec.discrete:
        raise ValueError(f"env={config.env!r} is invalid: DQN needs a discrete action space "
                         "(use sac for continuous actions)")
    learner = learners.make(config.learner, env_spec, config.normalize_obs)

    def init(key):
        key_learner, key_reset, key_warm, key_run = jax.random.split(key, 4)
        obs, env_state = env.reset(key_reset, env_params)
        replay = buffer.init(interact.example_transition(env_spec), config.buffer_size)
        obs, env_state, replay = interact.warmup(env, env_params, key_warm, env_state,
                                                 obs.astype(jnp.float32), replay,
                                                 config.initial_random_steps)
        return DQNRunState(learner=learner.init(key_learner), replay=replay, obs=obs,
                           env_state=env_state,
                           env_steps=jnp.full((), config.initial_random_steps, jnp.int32),
                           key=key_run)

    def train_step(carry, key):
        key_act, key_env, key_update = jax.random.split(key, 3)
        action = learner.act(carry.learner, key_act, carry.obs[None], True,
                             carry.env_steps - config.initial_random_steps)[0]
        obs, env_state, replay = interact.step_into(env, env_params, key_env, carry.env_state,
                                                    carry.obs, action, carry.replay)

        def update(state, k):
            key_sample, key_learn = jax.random.split(k)
            batch = buffer.sample(replay, key_sample, config.batch_size)
            return learner.update(state, batch, key_learn)

        def updates(learner_state):
            return jax.lax.scan(update, learner_state,
                                jax.random.split(key_update, config.updates_per_step))

        if config.train_every == 1:
            learner_state, info = updates(carry.learner)
        else:
            skipped = jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype),
                                   jax.eval_shape(updates, carry.learner)[1])
            learner_state, info = jax.lax.cond(
                carry.env_steps % config.train_every == 0, updates,
                lambda s: (s, skipped), carry.learner)
        carry = carry.replace(learner=learner_state, replay=replay, obs=obs,
                              env_state=env_state, env_steps=carry.env_steps + 1)
        return carry, jax.tree.map(jnp.mean, info)  # NaN on steps without updates

    def step(carry):
        key, key_steps, key_eval = jax.random.split(carry.key, 3)
        carry, info = jax.lax.scan(train_step, carry.replace(key=key),
                                   jax.random.split(key_steps, config.eval_every))
        policy = lambda k, obs: learner.act(carry.learner, k, obs, explore=False)
        eval_return, eval_length = interact.evaluate(env, env_params, policy, key_eval,
                                                     config.eval_episodes, env_spec.max_steps)
        metrics = {"env_steps": carry.env_steps, "eval_return": eval_return,
                   "eval_length": eval_length, **jax.tree.map(jnp.nanmean, info)}
        return carry, metrics

    return TrainLoop(init=init, step=step, num_iterations=config.num_iterations)


def make_train(config: Config):
    """``train(key) -> (DQNRunState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length`` and the learner's mean loss and Q over each interval."""
    return as_train(make_loop(config))


def policy(state: DQNRunState, config: Config):
    """The trained greedy policy as a pure function ``(key, obs [B, d]) -> action [B]``."""
    env, env_params = envs.make(config.env)
    env_spec = interact.spec(env, env_params)
    learner = learners.make(config.learner, env_spec, config.normalize_obs)
    return learners.policy(learner, state.learner)
