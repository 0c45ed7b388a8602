"""Model-Based Policy Optimization (Janner, Fu, Zhang & Levine 2019), fully jitted.

The loop of the paper's Algorithm 2 (``purembrl.offpolicy``'s loop, over this file's
``make_parts``; any budget and periods run, the last evaluation period cut at the budget):

    initial_random_steps uniformly random real steps into the env buffer
    every model_train_freq steps:  fit the ensemble on the env buffer (purembrl.dynamics)
      every rollout_freq steps:    branch rollouts_per_step * rollout_freq rollouts of length k
                                   from real states with the current policy into the model
                                   buffer (purembrl.rollout), k from the linear schedule
        every step:                act, store the real transition, take updates_per_step (G)
                                   learner updates on batches mixing a real_ratio fraction of
                                   env data with model data
    every eval_every steps:        evaluate the deterministic policy

The learner is any registered one (``purembrl.learners``); left ``None`` it is SAC for
continuous actions and double DQN (epsilon-greedy) for discrete ones, by the env's action space;
one that does not fit the env is a ``ValueError`` when training is built. ``real_ratio=1.0``
switches the model off entirely (no fit, no rollouts): the same code is then the model-free
baseline.

This file is MBPO's settings, its minibatch mix and its rollout schedule.

The rollout length k follows ``rollout_schedule = (min_epoch, max_epoch, min_len, max_len)``:
``min_len`` up to epoch ``min_epoch``, then linear to ``max_len`` at ``max_epoch``, epochs being
``epoch_length`` env steps. It is a traced value, so the schedule never recompiles: rollouts
compute only its ``k`` steps (a loop of traced length) into a ``max_len``-step output whose other
steps are masked. The model buffer keeps the rollouts of the last ``model_retain_epochs`` epochs.

``Config()`` is the paper's generic setting; ``Config.for_env(env, **overrides)`` starts from
``PRESETS[env]`` (documented there) instead.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, dynamics, envs, interact, learners, offpolicy
from purembrl.algos.base import ModelBasedConfig
from purembrl.config import check, check_choice, check_episode_horizon, static
from purembrl.envs import known
from purembrl.learners import DQNConfig, LearnerConfig, SACConfig
from purembrl.loop import TrainLoop, as_train
from purembrl.offpolicy import OffPolicyState

ENVS = ("Pendulum-v1", "NoisyPendulum-v1", "CartPole-v1", "MountainCarContinuous-v0",
        "Acrobot-v1")

PRESETS = {
    # Pendulum: 200-step episodes, so epochs of 200 steps and a warm-up of 250 random steps
    # (mbrl-lib's Pendulum/CartPole overrides also use 200-step epochs and rollout length 1);
    # the model is MBPO's 7 x 4 x 200 ensemble fitted in minibatches of 32 (PETS's, Chua et al.
    # 2018: on the few hundred transitions of the first fits, 256 leaves one SGD step per
    # epoch); 400 rollouts after every real step as in the paper's Algorithm 2 (not batched
    # every 250 steps, which trains on a stale policy's actions), half of each minibatch real;
    # SAC 128 x 128 (swish, Adam 1e-3, tau 0.02) with the paper's G = 20. The known termination
    # (never) is used; the reward is learned, as in the paper. Chosen on this library's runs
    # (benchmarks/mbpo_pendulum.py; the tuning runs are in benchmarks/RESULTS.md).
    "Pendulum-v1": dict(
        total_steps=3000, eval_every=250, initial_random_steps=250, buffer_size=100_000,
        batch_size=256, updates_per_step=20, real_ratio=0.5, model_train_freq=250,
        rollout_freq=1, rollouts_per_step=400, rollout_schedule=(1, 15, 1, 1),
        epoch_length=200, model_retain_epochs=1, known_termination=True,
        model=dynamics.EnsembleConfig(batch_size=32),
        learner=SACConfig(hidden_sizes=(128, 128), activation="swish", actor_lr=1e-3,
                          critic_lr=1e-3, alpha_lr=1e-3, tau=0.02)),
    # CartPole: MBPO-DQN with the known termination function and a learned model. Multi-step
    # targets (n = 10) on both the real rows and along 10-step model branches (MBVE-style, 20
    # branches per env step): with one-step targets 1 of 8 seeds reached 475 in 10k steps,
    # with these 8 of 8 on each of keys 0 and 1 (benchmarks/RESULTS.md, issue 20, 2026-12-04).
    # Adam's rate decays linearly to zero over the first 10k env steps' 47,500 updates (then
    # stays at zero), so that the policy stops moving once it balances: chosen on keys 0
    # (2026-12-07: 8 of 8 reach 475, median first step 5,500, 7 of 8 hold it; without the
    # decay 4 of 8) and checked on keys 1 (8 of 8, median 5,000, 6 of 8 hold it; without it 7).
    # The branched rollouts act with the epsilon the schedule ends at (``rollout_policy=
    # "settled"``), not the real steps' current one, so that the model's 10-step returns are
    # those of the near-greedy policy the targets bootstrap: the median first step at 475 on
    # keys 0 went from 5,500 to 3,500 and on keys 1 from 5,000 to 3,500, every seed within
    # 5,500; 11 of 16 seeds hold it, 13 of 16 before (2026-12-08, session 56).
    "CartPole-v1": dict(
        total_steps=10_500, eval_every=500, initial_random_steps=500, buffer_size=100_000,
        batch_size=128, updates_per_step=5, real_ratio=0.1, model_train_freq=250,
        rollout_freq=250, rollouts_per_step=20, rollout_schedule=(1, 1, 10, 10),
        n_step=10, model_n_step=10, rollout_policy="settled",
        epoch_length=500, model_retain_epochs=1, known_termination=True,
        learner=DQNConfig(hidden_sizes=(128, 128), target_update="periodic",
                          target_period=200, eps_decay_steps=5000, lr_decay_updates=47_500)),
}
# Acrobot: CartPole's MBPO-DQN (learner, minibatches, warm-up, 10-step targets on real rows and
# along 10-step branches), 20 branches per env step, with Acrobot's known reward and
# termination and the predicted observations projected onto Acrobot's (``project_obs``: cos/sin
# pairs on the unit circle, speeds clipped) before those read them; the dynamics are learned.
# Every seed reached -100 and held it within 10k steps on keys split(key(0), 8) (median 3,750
# steps) and split(key(1), 8) (median 4,000): benchmarks/RESULTS.md, issue 20, 2026-12-05.
PRESETS["Acrobot-v1"] = dict(
    total_steps=10_000, eval_every=500, n_step=10, model_n_step=10,
    rollout_schedule=(1, 1, 10, 10), rollouts_per_step=20,
    **{k: PRESETS["CartPole-v1"][k] for k in ("batch_size", "updates_per_step", "real_ratio",
                                             "rollout_freq", "initial_random_steps")},
    # the learner as measured there: a constant rate (CartPole's decay is not checked here)
    learner=PRESETS["CartPole-v1"]["learner"].replace(lr_decay_updates=0),
    known_reward=True, known_termination=True, project_obs=True)
# Pendulum with noise on each next angular velocity (``envs.NoisyPendulum``): Pendulum's preset.
PRESETS["NoisyPendulum-v1"] = PRESETS["Pendulum-v1"]
# The paper's own tasks through Brax: its Hopper setting exactly (Janner et al. 2019, Appendix
# C, and the Hopper config of the authors' code: 5000 random steps, SAC's target entropy -1,
# i.e. a third of the default -|A| = -3, and the known termination function); the inverted
# pendulum with its known termination, the rest generic.
PRESETS["brax-hopper"] = dict(
    total_steps=125_000, eval_every=5000, initial_random_steps=5000, known_termination=True,
    learner=SACConfig(target_entropy_scale=1 / 3))
PRESETS["brax-inverted_pendulum"] = dict(known_termination=True)
# gymnasium's MuJoCo tasks through the host path (``gymnasium:ID``, ``purembrl.envs.host``).
# InvertedPendulum: the authors' config (MBPO's ``inverted_pendulum.py``: 250-step epochs, 80
# of them, G = 10, 100k rollouts every 250 steps (400 per step) of length 1, real ratio 0.05,
# target entropy -0.05, i.e. 0.05 x -|A|, the known termination) with 500 random steps
# first. Hopper: the paper's Hopper setting, as for brax-hopper. Not yet tuned or measured
# here (issue 21's benchmarks/mbpo_mujoco.py).
for _v in (4, 5):
    PRESETS[f"gymnasium:InvertedPendulum-v{_v}"] = dict(
        total_steps=20_000, eval_every=250, initial_random_steps=500, updates_per_step=10,
        model_train_freq=250, rollout_freq=250, rollouts_per_step=400,
        rollout_schedule=(1, 15, 1, 1), epoch_length=250, known_termination=True,
        learner=SACConfig(target_entropy_scale=0.05))
    PRESETS[f"gymnasium:Hopper-v{_v}"] = PRESETS["brax-hopper"]
del _v


@struct.dataclass
class Config(ModelBasedConfig):
    """MBPO settings. The defaults are the paper's generic setting (Janner et al. 2019,
    Appendix C, for MuJoCo: G = 20, 400 rollouts per step, real ratio 0.05, refit every 250
    steps, 1000-step epochs), with the warm-up of 5000 steps scaled down to 1000 for gymnax's
    shorter tasks; ``Config.for_env(env)`` starts from ``PRESETS[env]``.

    The fields of ``purembrl.algos.base.ModelBasedConfig``, and:

    Attributes:
      updates_per_step: G, learner updates per env step.
      real_ratio: fraction of each minibatch from the env buffer; 1.0 switches the model off.
      rollout_freq: steps between rollout batches. rollouts_per_step: M, branched rollouts
        per env step.
      rollout_schedule: (min_epoch, max_epoch, min_len, max_len), see the module docstring.
      epoch_length: env steps per epoch (schedule and retention).
      model_retain_epochs: epochs of rollouts kept in the model buffer.
      rollout_chunk: most start states rolled out at once (bounds memory, not results' meaning).
      true_dynamics: branch rollouts through the env's true dynamics
        (``known.true_model_step``) instead of the fitted ensemble: a diagnostic, the upper
        bound of what a perfect model would give.
      n_step: the real part of each minibatch holds n-step returns
        (``purembrl.buffer.sample_mixed``); DQN learners only (their targets take the batch's
        ``discount``); 1: one-step targets.
      model_n_step: the model part holds returns of up to this many steps along each branched
        rollout, capped by its length (``purembrl.rollout.branch_returns``: MBVE's model-based
        value expansion, Feinberg et al. 2018, stored as targets); DQN learners only; 1:
        one-step model transitions.
      rollout_policy: how branched rollouts act (``purembrl.offpolicy.ROLLOUT_POLICIES``):
        ``"behaviour"`` as the real steps do (MBPO's choice; DQN's epsilon on its schedule),
        ``"settled"`` with the exploration the schedule ends at (DQN's ``eps_end``; the same
        as ``"behaviour"`` for SAC and NAF, whose noise has no schedule), ``"greedy"`` with
        the learner's deterministic action.
      project_obs: the ensemble's predicted observations projected onto the env's
        observation set before the known reward and termination read them and the model
        buffer stores them (``known.OBS_PROJECTIONS``: (cos, sin) pairs renormalised, speeds
        clipped to the env's bounds; PETS's post-processing, Chua et al. 2018).
      learner: the learner's config (any registered in ``purembrl.learners``); ``None``: the
        default for the env's action space (``learners.DEFAULTS``).
    """

    PRESETS = PRESETS

    updates_per_step: int = static(20)
    real_ratio: float = static(0.05)
    rollout_freq: int = static(250)
    rollouts_per_step: int = static(400)
    rollout_schedule: tuple[int, int, int, int] = static((20, 100, 1, 15))
    epoch_length: int = static(1000)
    model_retain_epochs: int = static(1)
    rollout_chunk: int = static(10_000)
    true_dynamics: bool = static(False)
    n_step: int = static(1)
    model_n_step: int = static(1)
    project_obs: bool = static(False)
    rollout_policy: str = static("behaviour")
    learner: LearnerConfig | None = None

    def __post_init__(self):
        self.check(counts=("rollouts_per_step", "epoch_length", "model_retain_epochs",
                           "rollout_chunk", "n_step", "model_n_step"),
                   non_negative=("updates_per_step",))
        check("real_ratio", self.real_ratio, lambda v: (v >= 0) & (v <= 1), "0 <= real_ratio <= 1")
        check_choice("rollout_policy", self.rollout_policy, offpolicy.ROLLOUT_POLICIES)
        schedule = self.rollout_schedule
        if (len(schedule) != 4 or any(not isinstance(v, int) for v in schedule)
                or schedule[0] > schedule[1] or not 1 <= schedule[2] <= schedule[3]):
            raise ValueError(f"rollout_schedule={schedule!r} is invalid: allowed integers "
                             "(min_epoch, max_epoch, min_len, max_len) with min_epoch <= "
                             "max_epoch and 1 <= min_len <= max_len")

    @property
    def model_on(self) -> bool:
        return self.real_ratio < 1.0

    @property
    def num_real(self) -> int:
        """Real samples in each learner minibatch."""
        return self.batch_size if not self.model_on else int(round(self.real_ratio
                                                                   * self.batch_size))

    @property
    def model_buffer_size(self) -> int:
        """Rollouts of ``model_retain_epochs`` epochs at the longest rollout length."""
        per_event = self.rollouts_per_step * self.rollout_freq * self.rollout_schedule[3]
        events = math.ceil(self.model_retain_epochs * self.epoch_length / self.rollout_freq)
        return per_event * events


def rollout_length(config: Config, env_steps: jax.Array) -> jax.Array:
    """The schedule's rollout length after ``env_steps`` real steps (an int32 scalar)."""
    min_epoch, max_epoch, min_len, max_len = config.rollout_schedule
    epoch = env_steps // config.epoch_length
    span = max(max_epoch - min_epoch, 1)
    frac = jnp.clip((epoch - min_epoch) / span, 0.0, 1.0)
    return jnp.floor(min_len + frac * (max_len - min_len)).astype(jnp.int32)


def make_parts(config: Config) -> offpolicy.Parts:
    """The loop's pieces (``purembrl.offpolicy.Parts``): init, model fit, one rollout batch,
    one real step and its updates, to time apart or recompose."""
    env, env_params = envs.make(config.env, config.env_params)
    env_spec = interact.spec(env, env_params)
    check_episode_horizon("rollout_schedule max_len", config.rollout_schedule[3],
                          env_spec.max_steps)
    learner = learners.make(config.learner, env_spec, config.normalize_obs)
    learner_config = config.learner or learners.default_config(env_spec)
    for name in ("n_step", "model_n_step"):
        if getattr(config, name) > 1 and not isinstance(learner_config, DQNConfig):
            raise ValueError(f"{name}={getattr(config, name)} is invalid: n-step returns are "
                             f"implemented for DQN learners only, not "
                             f"{type(learner_config).__name__}")
    gamma = learner_config.gamma  # the bootstrap discount of multi-step returns
    model_config, reward_fn, termination_fn = known.model_functions(config)
    num_real, num_model = config.num_real, config.batch_size - config.num_real

    def update(learner_state, state: OffPolicyState, key):
        """One learner update on a minibatch mixing env and model data."""
        key_batch, key_learn = jax.random.split(key)
        batch = buffer.sample_mixed(state.replay, state.model_buffer, key_batch, num_real,
                                    num_model, config.n_step, gamma)
        return learner.update(learner_state, batch, key_learn)

    rollouts = offpolicy.Rollouts(
        buffer_size=config.model_buffer_size, on=config.model_on,
        horizon=lambda env_steps: rollout_length(config, env_steps),
        max_horizon=config.rollout_schedule[3], reward_fn=reward_fn,
        termination_fn=termination_fn,
        model_step=known.true_model_step(config.env) if config.true_dynamics else None,
        n_step=config.model_n_step, gamma=gamma,
        obs_fn=known.OBS_PROJECTIONS[config.env] if config.project_obs else None,
        policy=config.rollout_policy)
    return offpolicy.make_parts(
        config, env, env_params, learner, offpolicy.repeated(update, config.updates_per_step),
        model_config=model_config, fit=config.model_on and not config.true_dynamics,
        rollouts=rollouts, episode_end=config.n_step > 1)


def make_loop(config: Config) -> TrainLoop:
    return offpolicy.make_loop(config, make_parts(config))


def make_train(config: Config):
    """``train(key) -> (OffPolicyState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length``, ``model_buffer_size``, the model's holdout MSE (elites),
    epochs and ``model_nonfinite`` flag, rollout length and count, and the learner's losses."""
    return as_train(make_loop(config))


def policy(state: OffPolicyState, config: Config):
    """The trained deterministic policy as a pure function ``(key, obs [B, d]) -> action``."""
    return offpolicy.trained_policy(state, config)
