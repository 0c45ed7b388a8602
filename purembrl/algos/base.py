"""The settings the off-policy algorithms share, as two config base classes.

SAC, DQN, MBPO, MBA, deep Dyna and MBVE all run ``purembrl.offpolicy``'s loop, so they share
its budget, evaluation, warm-up and replay fields (``OffPolicyConfig``); the model-based ones
add the ensemble, its refit period and the known reward and termination functions
(``ModelBasedConfig``). An algorithm's ``Config`` subclasses one of them, redeclares a shared
field only to change its default, adds its own fields and calls ``self.check(...)`` from its
``__post_init__`` with the names of its own counts, so that every shared field is validated in
one place with one message.
"""

from __future__ import annotations

from collections.abc import Iterable

from flax import struct

from purembrl import dynamics, envs, learners
from purembrl.config import (
    Presets,
    check_batch_fits,
    check_budget,
    check_extension,
    check_int,
    check_types,
    num_evaluations,
    static,
)
from purembrl.envs import known


@struct.dataclass
class OffPolicyConfig(Presets):
    """The fields of every off-policy run (``purembrl.offpolicy``).

    The defaults are MBPO's generic schedule (Janner et al. 2019) with its 5000-step warm-up
    scaled to 1000 for gymnax's shorter tasks; each algorithm redeclares those its paper sets
    otherwise.

    Attributes:
      env: a gymnax environment with flat observations.
      env_params: environment parameters in place of the env's defaults, ``"NAME=VALUE,..."``
        (gymnax's ``EnvParams`` fields, e.g. ``"max_speed=10"``; ``""``: the defaults).
      total_steps: real environment steps in the run, ``initial_random_steps`` included.
      eval_every: trained environment steps between evaluations (the run also evaluates at
        the end, whatever the budget).
      eval_episodes: episodes per evaluation.
      initial_random_steps: uniformly random steps before anything is learned (the warm-up).
      buffer_size: replay capacity. batch_size: real transitions per learner minibatch.
      normalize_obs: the learner trains and acts on running-normalised observations
        (``purembrl.learners.normalize_observations``; a model normalises its own inputs).
    """

    env: str = static("Pendulum-v1")
    env_params: str = static("")
    total_steps: int = static(21_000)
    eval_every: int = static(1000)
    eval_episodes: int = static(10)
    initial_random_steps: int = static(1000)
    buffer_size: int = static(1_000_000)
    batch_size: int = static(256)
    normalize_obs: bool = static(False)

    def __post_init__(self):
        self.check()

    def check(self, counts: Iterable[str] = (), non_negative: Iterable[str] = ()) -> None:
        """``ValueError`` naming the first bad field: the env is registered; the shared counts
        and ``counts`` are integers >= 1, ``non_negative`` integers >= 0; at least one step is
        trained after the warm-up; a minibatch fits in the buffer. Periods need not divide
        one another nor the budget (``purembrl.offpolicy`` cuts the last one). Every field's
        type is checked first (``purembrl.config.check_types``), a ``learner`` against the
        registry."""
        check_types(self)
        if hasattr(self, "learner"):
            learners.check_config("learner", self.learner)
        envs.check_name(self.env)
        envs.parse_params(self.env_params)
        for name in ("total_steps", "eval_every", "eval_episodes", "initial_random_steps",
                     "buffer_size", "batch_size", *counts):
            check_int(name, getattr(self, name), 1)
        for name in non_negative:
            check_int(name, getattr(self, name), 0)
        check_budget(self.total_steps, self.initial_random_steps, "initial_random_steps")
        check_batch_fits(self.batch_size, self.buffer_size)

    @property
    def num_iterations(self) -> int:
        """Evaluations in the run (``purembrl.config.num_evaluations``)."""
        return num_evaluations(self.total_steps, self.initial_random_steps, self.eval_every)

    def check_extension(self, shorter) -> None:
        """``ValueError`` unless this config is ``shorter`` with a larger ``total_steps`` and
        continuing ``shorter``'s finished run to it equals a run with this budget from the
        start. That holds when ``shorter``'s trained steps are a whole number of evaluation
        periods: every schedule (epsilon, learning-rate decay, rollout length, model fits,
        buffers) counts absolute steps, updates or epochs, never a share of the budget, so
        the budget only decides how many periods run and whether the last is cut short."""
        trained = shorter.total_steps - shorter.initial_random_steps
        check_extension(shorter, self, "total_steps", trained % shorter.eval_every == 0,
                        f"total_steps: the run's last evaluation period was cut at "
                        f"total_steps={shorter.total_steps} ({trained} trained steps, not a "
                        f"multiple of eval_every={shorter.eval_every}); a run with "
                        f"total_steps={self.total_steps} from the start has no evaluation "
                        "there, so continuing this one would not equal it; start a new run")


@struct.dataclass
class ModelBasedConfig(OffPolicyConfig):
    """``OffPolicyConfig`` with a learned model: the fields of MBPO, MBA, deep Dyna and MBVE.

    Attributes:
      model_train_freq: trained steps between model fits (MBPO's 250).
      known_reward: use ``purembrl.envs.known``'s reward function for this env instead of
        learning the reward.
      known_termination: use ``purembrl.envs.known``'s termination function for this env
        instead of learning it (MBPO's practice).
      model: the probabilistic ensemble (``purembrl.dynamics.EnsembleConfig``).
    """

    model_train_freq: int = static(250)
    known_reward: bool = static(False)
    known_termination: bool = static(False)
    model: dynamics.EnsembleConfig = dynamics.EnsembleConfig()

    def check(self, counts: Iterable[str] = (), non_negative: Iterable[str] = ()) -> None:
        """``OffPolicyConfig.check`` with ``model_train_freq`` (and ``rollout_freq`` where the
        config has one) among the counts, and the known functions available for the env."""
        rollouts = ("rollout_freq",) if hasattr(self, "rollout_freq") else ()
        super().check(("model_train_freq", *rollouts, *counts), non_negative)
        known.check(self.env, self.known_reward, self.known_termination,
                    getattr(self, "true_dynamics", False), self.env_params,
                    getattr(self, "project_obs", False))
