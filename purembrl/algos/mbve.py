"""Model-based value expansion, MBVE: H-step model targets for SAC's critic (TD-k trick).

Feinberg, Wang, Stoica, Jordan, Gonzalez & Levine 2018, "Model-Based Value Estimation for
Efficient Model-Free Reinforcement Learning".

The critic's target looks H steps ahead through the learned model instead of one step through
the data. From a real transition (s_0, a_0, r_0, s_1) the current policy imagines a_1 .. a_H
and the model s_2 .. s_{H+1} (and r_1 .. r_H); the target of Q(s_t, a_t), for every t = 0..H
on that path (the paper's TD-k trick, which trains the critic on the imagined states it will
be asked about), is

    G_t = sum_{k=t}^{H} g^{k-t} r~_k + g^{H+1-t} min_i Q'_i(s_{H+1}, a_{H+1}),

cut at the first termination (``value.mbve_targets``). The learner is SAC, so the rewards
carry the entropy bonus of the soft value, r~_k = r_k - g (1 - d_k) alpha log pi(a_{k+1} |
s_{k+1}); with H = 0 the target is SAC's one-step target exactly. The paper's learner is DDPG
with a deterministic model; here the model is the probabilistic ensemble of
``purembrl.dynamics`` (by default each imagined step takes a random elite's mean), and the
actor and temperature train on the real states as in SAC.

The loop is ``purembrl.offpolicy``'s with a fit and no branch (the model is queried inside
every update):

    initial_random_steps uniformly random real steps into the replay buffer
    every model_train_freq steps:  fit the ensemble on the replay buffer
      every step:                  act, store the real transition, take updates_per_step (G)
                                   SAC updates with H-step expanded critic targets
    every eval_every steps:        evaluate the deterministic policy

Continuous actions only (a discrete env is a ``ValueError`` when training is built).
``Config()`` is the generic setting; ``Config.for_env(env, **overrides)`` starts from
``PRESETS[env]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import buffer, dynamics, envs, interact, learners, offpolicy, value
from purembrl.algos.base import ModelBasedConfig
from purembrl.config import check_int, static
from purembrl.envs import known
from purembrl.learners import CriticTargets, SACConfig, SACNets, sac_nets
from purembrl.loop import TrainLoop, as_train
from purembrl.offpolicy import OffPolicyState
from purembrl.types import Transition

ENVS = ("Pendulum-v1", "MountainCarContinuous-v0")

PRESETS = {
    # Pendulum: deep Dyna's budget and SAC (the MBPO preset's 128 x 128 swish learner),
    # G = 10 updates per step, each expanded H = 3 steps through the model (about 4x the critic
    # work of a one-step update); known termination (never), learned reward.
    "Pendulum-v1": dict(
        total_steps=3000, eval_every=250, initial_random_steps=250, buffer_size=100_000,
        batch_size=256, updates_per_step=10, horizon=3, model_train_freq=250,
        known_termination=True,
        learner=SACConfig(hidden_sizes=(128, 128), activation="swish", actor_lr=1e-3,
                          critic_lr=1e-3, alpha_lr=1e-3, tau=0.02)),
}


@struct.dataclass
class Config(ModelBasedConfig):
    """MBVE settings. The defaults are the model schedule of MBPO's generic setting (refit
    every 250 steps after 1000 random steps), one update per step, H = 3 (short horizons are
    where Feinberg et al. found expansion reliable with a learned model);
    ``Config.for_env(env)`` starts from ``PRESETS[env]``.

    The fields of ``purembrl.algos.base.ModelBasedConfig``, and:

    Attributes:
      env: a gymnax environment with flat observations and continuous actions.
      updates_per_step: G, SAC updates per env step.
      horizon: H, imagined steps per target (0: plain SAC targets, the model unused); at most
        the env's episode length.
      td_k: train the critic at every state of the imagined path (the paper's TD-k trick);
        False trains it at the real (s_0, a_0) only, on the H-step target.
      deterministic_model: imagined steps take a random elite's mean (the paper's deterministic
        model) instead of sampling its Gaussian.
      learner: SAC's hyperparameters (MBVE's targets are SAC's).

    With ``normalize_obs`` SAC trains and acts on the statistics of the real minibatches (as
    ``purembrl.learners.normalize_observations``), and the imagined path is normalised the
    same way before the actor and critics see it.
    """

    PRESETS = PRESETS

    updates_per_step: int = static(1)
    horizon: int = static(3)
    td_k: bool = static(True)
    deterministic_model: bool = static(True)
    learner: SACConfig = SACConfig()

    def __post_init__(self):
        # first, so the reason is given (the type check would only name the class)
        if not isinstance(self.learner, SACConfig):
            raise ValueError(f"learner={type(self.learner).__name__} is invalid for MBVE: "
                             "allowed SACConfig (the expanded targets are SAC's soft values)")
        self.check(non_negative=("updates_per_step", "horizon"))


def expanded_critic_batch(nets: SACNets, learner_state, real: Transition, model_step,
                          key: jax.Array, horizon: int, gamma, td_k: bool = True,
                          normalize=None):
    """MBVE's critic regression set for a batch of real transitions.

    Imagines ``horizon`` (H) steps from each real s_1 with the current policy through
    ``model_step`` and returns ``(obs [B (H+1), d], action [B (H+1), a], target [B (H+1)],
    weight [B (H+1)])``, time-major (rows ``t B .. t B + B - 1`` are step t; t = 0 is the real
    (s_0, a_0)): the regression set of a ``learners.CriticTargets`` batch for SAC. ``weight``
    is 0 for imagined states after a termination (and, without ``td_k``, for every imagined
    state). Step t uses ``jax.random.split(key, H + 1)[t]``, the bootstrap action the last
    key. ``normalize`` (optional, ``obs -> obs``): what the actor and critics see of an
    observation (the model steps in original units); the returned ``obs`` are normalised."""
    norm = normalize if normalize is not None else (lambda obs: obs)
    alpha = jnp.exp(learner_state.log_alpha)
    keys = jax.random.split(key, horizon + 1)
    real_obs = real.obs.astype(jnp.float32)
    real_action = real.action.astype(jnp.float32).reshape(real_obs.shape[0], -1)

    def imagine(carry, k):
        obs, alive = carry
        key_pi, key_model = jax.random.split(k)
        action, log_prob = nets.sample(learner_state.actor, key_pi, norm(obs))
        next_obs, reward, terminated = model_step(key_model, obs, action)
        terminated = terminated.astype(bool)
        return (next_obs, alive & ~terminated), (obs, action, log_prob, reward, terminated,
                                                 alive)

    start = (real.next_obs.astype(jnp.float32), ~real.terminated.astype(bool))
    (last_obs, _), (obs, action, log_prob, reward, terminated, alive) = jax.lax.scan(
        imagine, start, keys[:horizon])
    last_action, last_log_prob = nets.sample(learner_state.actor, keys[horizon], norm(last_obs))
    bootstrap = jnp.min(nets.critic_values(learner_state.target_critic, norm(last_obs),
                                           last_action), axis=0)
    # time-major [H + 1, B]: step 0 is the real transition
    cat = lambda first, rest: jnp.concatenate([first[None], rest])
    path_obs, path_action = cat(real_obs, obs), cat(real_action, action)
    rewards = cat(real.reward.astype(jnp.float32), reward)
    dones = cat(real.terminated.astype(bool), terminated)
    next_log_prob = jnp.concatenate([log_prob, last_log_prob[None]])
    soft_rewards = rewards - gamma * (1.0 - dones) * alpha * next_log_prob
    targets = jax.vmap(value.mbve_targets, in_axes=(1, 1, None, 0), out_axes=1)(
        soft_rewards, dones, gamma, bootstrap)
    weight = cat(jnp.ones_like(real.reward, jnp.float32),
                 alive.astype(jnp.float32) * (1.0 if td_k else 0.0))
    flat = lambda x: x.reshape(-1, *x.shape[2:])
    return (flat(norm(path_obs)), flat(path_action), jax.lax.stop_gradient(flat(targets)),
            flat(weight))


def _learner(config: Config, env_spec):
    """SAC (normalised when the config asks); ``ValueError`` for an env MBVE cannot run on."""
    if env_spec.discrete:
        raise ValueError(f"env={config.env!r} is invalid for MBVE: its actions are discrete "
                         "(allowed: an env with continuous actions)")
    check_int("horizon", config.horizon, 0, env_spec.max_steps)
    return learners.make(config.learner, env_spec, config.normalize_obs)


def make_loop(config: Config) -> TrainLoop:
    env, env_params = envs.make(config.env, config.env_params)
    env_spec = interact.spec(env, env_params)
    learner = _learner(config, env_spec)
    nets = sac_nets(config.learner, env_spec.action_low, env_spec.action_high)
    model_config, reward_fn, termination_fn = known.model_functions(config)
    gamma = config.learner.gamma

    def updates(state: OffPolicyState, key):
        """G SAC updates whose critic targets look H steps ahead through the model."""
        model_step = dynamics.make_model_step(
            state.model, model_config, deterministic=config.deterministic_model,
            reward_fn=reward_fn, termination_fn=termination_fn)

        def update(learner_state, state: OffPolicyState, key):
            key_batch, key_path, key_learn = jax.random.split(key, 3)
            real = buffer.sample(state.replay, key_batch, config.batch_size)

            def build(sac_state, preprocess):
                regression = expanded_critic_batch(nets, sac_state, real, model_step, key_path,
                                                   config.horizon, gamma, config.td_k,
                                                   normalize=preprocess)
                target = regression[2].reshape(config.horizon + 1, -1)
                return regression, {"target_real_mean": target[0].mean()}

            return learner.update(learner_state, CriticTargets(real, build), key_learn)

        return offpolicy.repeated(update, config.updates_per_step)(state, key)

    return offpolicy.make_loop(config, offpolicy.make_parts(
        config, env, env_params, learner, updates, model_config=model_config))


def make_train(config: Config):
    """``train(key) -> (OffPolicyState, metrics)``; metrics ``[num_evals]``: ``env_steps``,
    ``eval_return``, ``eval_length``, the model's holdout MSE and non-finite flag, SAC's
    losses, and ``target_real_mean`` (mean expanded target at the real (s_0, a_0))."""
    return as_train(make_loop(config))


def policy(state: OffPolicyState, config: Config):
    """The trained deterministic policy as a pure function ``(key, obs [B, d]) -> action``."""
    return offpolicy.trained_policy(state, config)
