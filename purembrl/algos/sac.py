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

from purembrl import offpolicy
from purembrl.algos.base import OffPolicyConfig
from purembrl.config import static
from purembrl.learners import SACConfig
from purembrl.loop import TrainLoop, as_train
from purembrl.offpolicy import OffPolicyState

ENVS = ("Pendulum-v1", "NoisyPendulum-v1", "MountainCarContinuous-v0")

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
# Pendulum with noise on each next angular velocity (``envs.NoisyPendulum``): Pendulum's preset.
PRESETS["NoisyPendulum-v1"] = PRESETS["Pendulum-v1"]


@struct.dataclass
class Config(OffPolicyConfig):
    """SAC run settings; ``Config.for_env(env)`` starts from ``PRESETS[env]``.

    The fields of ``purembrl.algos.base.OffPolicyConfig`` (with a longer budget and warm-up
    than the model-based algorithms'), and:

    Attributes:
      env: a gymnax environment with a continuous (Box) action space.
      updates_per_step: G, SAC updates per environment step.
      learner: the learner's hyperparameters (``purembrl.learners.SACConfig``).
    """

    PRESETS = PRESETS

    total_steps: int = static(100_000)
    eval_every: int = static(5000)
    initial_random_steps: int = static(5000)
    updates_per_step: int = static(1)
    learner: SACConfig = SACConfig()

    def __post_init__(self):
        self.check(non_negative=("updates_per_step",))


def make_loop(config: Config) -> TrainLoop:
    """SAC's ``TrainLoop``: ``purembrl.offpolicy``'s loop without a model."""
    return offpolicy.model_free_loop(config, "SAC", discrete=False)


def make_train(config: Config):
    """``train(key) -> (OffPolicyState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length`` and the learner's mean losses over each interval."""
    return as_train(make_loop(config))


def policy(state: OffPolicyState, config: Config):
    """The trained deterministic policy as a pure function ``(key, obs [B, d]) -> action``."""
    return offpolicy.trained_policy(state, config)
