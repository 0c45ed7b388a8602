"""Soft actor-critic (Haarnoja et al. 2018), model-free, fully jitted: the baseline for MBPO.

``initial_random_steps`` uniformly random steps fill the replay buffer; then each environment step
samples an action from the policy, stores the transition and takes ``updates_per_step`` SAC
updates on uniform minibatches. Every ``eval_every`` steps the deterministic policy tanh(mean)
is evaluated on ``eval_episodes`` fresh episodes.

``Config()`` is the paper's setting; ``Config.for_env("Pendulum-v1")`` the tuned Pendulum
preset (``PRESETS``).
"""

from __future__ import annotations

from flax import struct

from purembrl import envs, interact, learners, offpolicy
from purembrl.config import (
    Presets,
    check_batch_fits,
    check_budget,
    check_int,
    num_evaluations,
    static,
)
from purembrl.learners import SACConfig
from purembrl.loop import TrainLoop, as_train
from purembrl.offpolicy import OffPolicyState

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
        check_budget(self.total_steps, self.initial_random_steps, "initial_random_steps")

    @property
    def num_iterations(self) -> int:
        return num_evaluations(self.total_steps, self.initial_random_steps, self.eval_every)


def make_loop(config: Config) -> TrainLoop:
    """SAC's ``TrainLoop``: ``purembrl.offpolicy``'s loop without a model."""
    return offpolicy.model_free_loop(config, "SAC", discrete=False)


def make_train(config: Config):
    """``train(key) -> (OffPolicyState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length`` and the learner's mean losses over each interval."""
    return as_train(make_loop(config))


def policy(state: OffPolicyState, config: Config):
    """The trained deterministic policy as a pure function ``(key, obs [B, d]) -> action``."""
    env, env_params = envs.make(config.env)
    env_spec = interact.spec(env, env_params)
    learner = learners.make(config.learner, env_spec, config.normalize_obs)
    return learners.policy(learner, state.learner)
