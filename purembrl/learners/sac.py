"""Soft actor-critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"):
twin critics with Polyak-averaged targets, a tanh-squashed Gaussian actor (distrax
``Transformed(MultivariateNormalDiag, Block(Tanh))``, so the log-prob carries the tanh
correction), automatic temperature towards a target entropy of ``-target_entropy_scale *
action_dim``. The squashed action in [-1, 1] is scaled affinely to the environment's bounds;
log-probs and the entropy target refer to the [-1, 1] action. The losses live in
``purembrl.value``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import optax
from flax import struct

from purembrl import value
from purembrl.config import check, check_choice, check_int, check_sizes, check_types, static
from purembrl.learners.base import CriticTargets, Learner
from purembrl.networks import ACTIVATIONS, MLP, GaussianActor, ensemble_apply, ensemble_init
from purembrl.types import Transition


@struct.dataclass
class SACConfig:
    """SAC hyperparameters; defaults are Haarnoja et al. 2018 (Table 1), 256 x 256 ReLU.

    Attributes:
      hidden_sizes: widths of the actor's and each critic's hidden layers.
      activation: hidden activation, one of ``purembrl.networks.ACTIVATIONS``.
      num_critics: Q-networks whose minimum is the target (clipped double Q; 2 in the paper).
      actor_lr: Adam step size of the policy.
      critic_lr: Adam step size of the Q-networks.
      alpha_lr: Adam step size of the log temperature (when ``autotune_alpha``).
      gamma: discount.
      tau: Polyak rate of the target Q-networks.
      init_alpha: the entropy temperature at the start.
      target_entropy_scale: the target entropy is ``-scale * action_dim`` (1: the paper's).
      autotune_alpha: learn the temperature against the target entropy; False keeps
        ``init_alpha``.
    """

    hidden_sizes: tuple[int, ...] = static((256, 256))
    activation: str = static("relu")
    num_critics: int = static(2)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    target_entropy_scale: float = 1.0
    autotune_alpha: bool = static(True)

    def __post_init__(self):
        check_types(self)
        check_sizes("hidden_sizes", self.hidden_sizes)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_int("num_critics", self.num_critics, 1)
        for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha"):
            check(name, getattr(self, name), lambda v: v > 0, f"{name} > 0")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v < 1), "0 <= gamma < 1")
        check("tau", self.tau, lambda v: (v > 0) & (v <= 1), "0 < tau <= 1")
        check("target_entropy_scale", self.target_entropy_scale, lambda v: v == v,
              "any finite real number (the target entropy is -scale * action_dim)")


@struct.dataclass
class SACState:
    actor: Any
    critic: Any  # [num_critics, ...] stacked
    target_critic: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    steps: jax.Array


def squashed_gaussian(mean: jax.Array, log_std: jax.Array) -> distrax.Distribution:
    """tanh(N(mean, exp(log_std))) over [-1, 1]^d with the exact log-density."""
    return distrax.Transformed(distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)),
                               distrax.Block(distrax.Tanh(), ndims=1))


class SACNets(NamedTuple):
    """SAC's networks as pure functions, for algorithms that build their own critic targets
    (MBVE's expansion along an imagined path).

    ``sample(actor, key, obs [B, d]) -> (action [B, a] in env units, log pi [B])`` (log pi of
    the [-1, 1] action); ``critic_values(critic, obs [B, d], action [B, a]) -> [num_critics,
    B]``; ``mean_action(actor, obs) -> [B, a]`` (the deterministic policy, env units);
    ``to_env(unit [B, a]) -> [B, a]`` maps [-1, 1] actions to the env's bounds."""

    actor: GaussianActor
    critic: MLP
    action_dim: int
    to_env: Callable[[jax.Array], jax.Array]
    sample: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
    critic_values: Callable[[Any, jax.Array, jax.Array], jax.Array]
    mean_action: Callable[[Any, jax.Array], jax.Array]


def sac_nets(config: SACConfig, action_low: jax.Array, action_high: jax.Array) -> SACNets:
    """The actor, the twin critics and the affine map from [-1, 1] to the env's bounds."""
    action_low = jnp.asarray(action_low, jnp.float32).reshape(-1)
    action_high = jnp.asarray(action_high, jnp.float32).reshape(-1)
    action_dim = action_low.shape[0]
    actor_net = GaussianActor(config.hidden_sizes, action_dim, config.activation)
    critic_net = MLP(config.hidden_sizes, 1, config.activation)
    scale, shift = (action_high - action_low) / 2, (action_high + action_low) / 2

    def to_env(unit_action):
        return shift + scale * unit_action

    def critic_values(params, obs, action):
        x = jnp.concatenate([obs, action], axis=-1)
        x = jnp.broadcast_to(x, (config.num_critics, *x.shape))
        return ensemble_apply(critic_net, params, x)[..., 0]

    def sample(params, key, obs):
        mean, log_std = actor_net.apply(params, obs)
        unit, log_prob = squashed_gaussian(mean, log_std).sample_and_log_prob(seed=key)
        return to_env(unit), log_prob

    def mean_action(params, obs):
        mean, _ = actor_net.apply(params, obs)
        return to_env(jnp.tanh(mean))

    return SACNets(actor_net, critic_net, action_dim, to_env, sample, critic_values, mean_action)


def critic_regression(nets: SACNets, gamma, state: SACState, batch: Transition, key,
                      alpha: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(obs [N, d], action [N, a], target [N])`` the critics regress on for ``batch``: SAC's
    soft target ``r + g (1 - d) (min_i Q'_i(s', a') - alpha log pi(a' | s'))`` with a' ~ pi
    (Haarnoja et al. 2018, Eq. (3)), or for a batch of (s, a) with K sampled next states
    (``reward``, ``terminated`` ``[B, K]``, ``next_obs`` ``[B, K, d]``) the mean of it over
    the K samples (deep Dyna, ``value.expected_target``)."""
    obs, next_obs = batch.obs.astype(jnp.float32), batch.next_obs.astype(jnp.float32)
    action = batch.action.astype(jnp.float32).reshape(obs.shape[0], nets.action_dim)
    if batch.reward.ndim == 2:  # K model samples of s' per (s, a): deep Dyna's expectation
        B, K = batch.reward.shape
        flat = next_obs.reshape(B * K, -1)
        next_action, next_log_prob = nets.sample(state.actor, key, flat)
        next_q = nets.critic_values(state.target_critic, flat, next_action)  # [num, B K]
        soft = (jnp.min(next_q, axis=0) - alpha * next_log_prob).reshape(B, K)
        target = jax.vmap(value.expected_target, in_axes=(0, 0, None, 0))(
            batch.reward.astype(jnp.float32), batch.terminated, gamma, soft)
    else:
        next_action, next_log_prob = nets.sample(state.actor, key, next_obs)
        next_q = nets.critic_values(state.target_critic, next_obs, next_action)  # [num, B]
        target = jax.vmap(value.sac_target, in_axes=(0, 0, None, 1, 0, None))(
            batch.reward.astype(jnp.float32), batch.terminated, gamma, next_q,
            next_log_prob, alpha)
    return obs, action, target


def _critic_inputs(nets: SACNets, gamma, state: SACState, batch: Transition | CriticTargets,
                   key: jax.Array, alpha: jax.Array):
    """``(obs, (critic_obs, critic_action, target, weight), info)``: the real observations the
    actor trains on and the critics' regression set, from ``CriticTargets.build`` (MBVE) or
    from ``critic_regression`` (unweighted, no extra info)."""
    if isinstance(batch, CriticTargets):
        regression, info = batch.build(state, lambda raw: raw)
        return batch.real.obs.astype(jnp.float32), regression, info
    obs, action, target = critic_regression(nets, gamma, state, batch, key, alpha)
    return obs, (obs, action, target, None), {}


def _critic_step(nets: SACNets, opt: optax.GradientTransformation, state: SACState,
                 obs: jax.Array, action: jax.Array, target: jax.Array, weight):
    """One optimiser step of the critics on (obs, action, target), a ``weight``-weighted mean
    of the losses when ``weight`` is given: ``(critic, opt_state, loss, q [num, N])``."""
    def critic_loss(params):
        q = nets.critic_values(params, obs, action)
        losses = jax.vmap(value.sac_critic_loss, in_axes=(1, 0))(q, target)
        if weight is None:
            return jnp.mean(losses), q
        return jnp.sum(weight * losses) / jnp.maximum(jnp.sum(weight), 1e-8), q

    (loss, q), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
    updates, opt_state = opt.update(grads, state.critic_opt, state.critic)
    return optax.apply_updates(state.critic, updates), opt_state, loss, q


def _actor_step(nets: SACNets, opt: optax.GradientTransformation, state: SACState, critic,
                obs: jax.Array, key: jax.Array, alpha: jax.Array):
    """One optimiser step of the actor against ``critic`` (Eq. (7)): ``(actor, opt_state,
    loss, log pi [B])``."""
    def actor_loss(params):
        new_action, log_prob = nets.sample(params, key, obs)
        q_new = nets.critic_values(critic, obs, new_action)
        loss = jax.vmap(value.sac_actor_loss, in_axes=(1, 0, None))(q_new, log_prob, alpha)
        return jnp.mean(loss), log_prob

    (loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
    updates, opt_state = opt.update(grads, state.actor_opt, state.actor)
    return optax.apply_updates(state.actor, updates), opt_state, loss, log_prob


def _temperature_step(opt: optax.GradientTransformation, state: SACState, log_prob: jax.Array,
                      target_entropy: float):
    """One optimiser step of log alpha towards the target entropy (Eq. (18)):
    ``(log_alpha, opt_state)``."""
    def alpha_loss(la):
        return jnp.mean(jax.vmap(value.sac_temperature_loss, in_axes=(None, 0, None))(
            la, log_prob, target_entropy))

    grad = jax.grad(alpha_loss)(state.log_alpha)
    updates, opt_state = opt.update(grad, state.alpha_opt, state.log_alpha)
    return optax.apply_updates(state.log_alpha, updates), opt_state


def make_sac(config: SACConfig, obs_dim: int, action_low: jax.Array,
             action_high: jax.Array) -> Learner:
    """A SAC learner for ``obs_dim`` observations and actions in [action_low, action_high].

    ``update`` takes a batch of transitions, or of (s, a) with K sampled next states each
    (``critic_regression``), or ``CriticTargets``: the critics then regress on the targets its
    ``build`` makes from the state (with ``sac_nets``; MBVE's value-expansion targets), as a
    ``weight``-weighted mean, and the actor and temperature train on its real ``obs``."""
    nets = sac_nets(config, action_low, action_high)
    action_dim = nets.action_dim
    actor_net, critic_net = nets.actor, nets.critic
    actor_opt = optax.adam(config.actor_lr)
    critic_opt = optax.adam(config.critic_lr)
    alpha_opt = optax.adam(config.alpha_lr)
    target_entropy = -config.target_entropy_scale * action_dim

    def init(key):
        key_actor, key_critic = jax.random.split(key)
        actor = actor_net.init(key_actor, jnp.zeros((1, obs_dim)))
        critic = ensemble_init(critic_net, key_critic, config.num_critics, obs_dim + action_dim)
        log_alpha = jnp.log(jnp.asarray(config.init_alpha, jnp.float32))
        return SACState(actor=actor, critic=critic, target_critic=critic, log_alpha=log_alpha,
                        actor_opt=actor_opt.init(actor), critic_opt=critic_opt.init(critic),
                        alpha_opt=alpha_opt.init(log_alpha), steps=jnp.zeros((), jnp.int32))

    def update(state: SACState, batch: Transition | CriticTargets, key):
        key_next, key_new = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        obs, (critic_obs, critic_action, target, weight), extra = _critic_inputs(
            nets, config.gamma, state, batch, key_next, alpha)
        target = jax.lax.stop_gradient(target)
        critic, critic_opt_state, c_loss, q = _critic_step(nets, critic_opt, state, critic_obs,
                                                           critic_action, target, weight)
        actor, actor_opt_state, a_loss, log_prob = _actor_step(nets, actor_opt, state, critic,
                                                               obs, key_new, alpha)
        log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt
        if config.autotune_alpha:
            log_alpha, alpha_opt_state = _temperature_step(alpha_opt, state, log_prob,
                                                           target_entropy)
        new_state = SACState(
            actor=actor, critic=critic,
            target_critic=value.polyak(state.target_critic, critic, config.tau),
            log_alpha=log_alpha, actor_opt=actor_opt_state, critic_opt=critic_opt_state,
            alpha_opt=alpha_opt_state, steps=state.steps + 1)
        info = {"critic_loss": c_loss, "actor_loss": a_loss, "alpha": jnp.exp(log_alpha),
                "q_mean": q.mean(), "entropy": -log_prob.mean(), **extra}
        return new_state, info

    def act(state: SACState, key, obs, explore: bool | jax.Array = True, step=0):
        """Sampled action when exploring, else the mean action tanh(mu) (SAC's evaluation):
        one actor pass for both."""
        mean, log_std = actor_net.apply(state.actor, obs)
        sampled, _ = squashed_gaussian(mean, log_std).sample_and_log_prob(seed=key)
        return nets.to_env(jnp.where(explore, sampled, jnp.tanh(mean)))

    return Learner(init=init, update=update, act=act)
