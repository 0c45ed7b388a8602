"""Off-policy learners as triples of pure functions: ``init``, ``update``, ``act`` (optax-style).

``make_sac(config, obs_dim, action_low, action_high)`` and ``make_dqn(config, obs_dim,
num_actions)`` return a ``Learner``; an algorithm composes it with an environment loop, a replay
buffer and, for the model-based ones, a learned model. The losses live in ``purembrl.value``.

* SAC (Haarnoja et al. 2018): twin critics with Polyak-averaged targets, a tanh-squashed
  Gaussian actor (distrax ``Transformed(MultivariateNormalDiag, Block(Tanh))``, so the log-prob
  carries the tanh correction), automatic temperature towards a target entropy of
  ``-target_entropy_scale * action_dim``. The squashed action in [-1, 1] is scaled affinely to
  the environment's bounds; log-probs and the entropy target refer to the [-1, 1] action.
* DQN (Mnih et al. 2015) with the double-Q target (van Hasselt et al. 2016), Huber or squared
  loss, epsilon-greedy acting, Polyak or periodic target updates, optional gradient clipping.
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
from purembrl.config import check, check_choice, check_int, check_sizes, static
from purembrl.networks import ACTIVATIONS, MLP, GaussianActor, ensemble_apply, ensemble_init
from purembrl.types import Transition


class Learner(NamedTuple):
    """``init(key) -> state``; ``update(state, batch, key) -> (state, info)`` with ``batch`` a
    ``Transition`` with a leading batch axis; ``act(state, key, obs [B, ...], explore) ->
    action [B, ...]`` (``explore``: sample / epsilon-greedy, else the deterministic policy)."""

    init: Callable[[jax.Array], Any]
    update: Callable[[Any, Transition, jax.Array], tuple[Any, dict[str, jax.Array]]]
    act: Callable[..., jax.Array]


# --- SAC --------------------------------------------------------------------------------------

@struct.dataclass
class SACConfig:
    """SAC hyperparameters; defaults are Haarnoja et al. 2018 (Table 1), 256 x 256 ReLU."""

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
        check_sizes("hidden_sizes", self.hidden_sizes)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_int("num_critics", self.num_critics, 1)
        for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha"):
            check(name, getattr(self, name), lambda v: v > 0, f"{name} > 0")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v < 1), "0 <= gamma < 1")
        check("tau", self.tau, lambda v: (v > 0) & (v <= 1), "0 < tau <= 1")


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


def make_sac(config: SACConfig, obs_dim: int, action_low: jax.Array,
             action_high: jax.Array) -> Learner:
    """A SAC learner for ``obs_dim`` observations and actions in [action_low, action_high].

    ``update`` takes a batch of transitions, or of (s, a) with K sampled next states each
    (``reward``, ``terminated`` ``[B, K]``, ``next_obs`` ``[B, K, obs_dim]``): the critic then
    regresses on the mean target over the K samples (deep Dyna, ``value.expected_target``).
    ``update(state, batch, key, critic_batch=(obs [N, d], action [N, a], target [N], weight
    [N]))`` regresses the critics on those targets instead, as a ``weight``-weighted mean
    (built by the caller from ``sac_nets``, e.g. MBVE's value-expansion targets); the actor and
    temperature still train on ``batch.obs``."""
    nets = sac_nets(config, action_low, action_high)
    action_dim = nets.action_dim
    actor_net, critic_net = nets.actor, nets.critic
    critic_values, sample = nets.critic_values, nets.sample
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

    def update(state: SACState, batch: Transition, key, critic_batch=None):
        key_next, key_new = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        obs, next_obs = batch.obs.astype(jnp.float32), batch.next_obs.astype(jnp.float32)
        action = batch.action.astype(jnp.float32).reshape(obs.shape[0], action_dim)

        critic_obs, critic_action, weight = obs, action, None
        if critic_batch is not None:  # targets built by the caller (MBVE)
            critic_obs, critic_action, target, weight = critic_batch
        elif batch.reward.ndim == 2:  # K model samples of s' per (s, a): deep Dyna's expectation
            B, K = batch.reward.shape
            flat = next_obs.reshape(B * K, -1)
            next_action, next_log_prob = sample(state.actor, key_next, flat)
            next_q = critic_values(state.target_critic, flat, next_action)  # [num, B K]
            soft = (jnp.min(next_q, axis=0) - alpha * next_log_prob).reshape(B, K)
            target = jax.vmap(value.expected_target, in_axes=(0, 0, None, 0))(
                batch.reward.astype(jnp.float32), batch.terminated, config.gamma, soft)
        else:
            next_action, next_log_prob = sample(state.actor, key_next, next_obs)
            next_q = critic_values(state.target_critic, next_obs, next_action)  # [num, B]
            target = jax.vmap(value.sac_target, in_axes=(0, 0, None, 1, 0, None))(
                batch.reward.astype(jnp.float32), batch.terminated, config.gamma, next_q,
                next_log_prob, alpha)
        target = jax.lax.stop_gradient(target)

        def critic_loss(params):
            q = critic_values(params, critic_obs, critic_action)
            losses = jax.vmap(value.sac_critic_loss, in_axes=(1, 0))(q, target)
            if weight is None:
                return jnp.mean(losses), q
            return jnp.sum(weight * losses) / jnp.maximum(jnp.sum(weight), 1e-8), q

        (c_loss, q), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
        updates, critic_opt_state = critic_opt.update(grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, updates)

        def actor_loss(params):
            new_action, log_prob = sample(params, key_new, obs)
            q_new = critic_values(critic, obs, new_action)
            loss = jax.vmap(value.sac_actor_loss, in_axes=(1, 0, None))(q_new, log_prob, alpha)
            return jnp.mean(loss), log_prob

        (a_loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
        updates, actor_opt_state = actor_opt.update(grads, state.actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, updates)

        log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt
        if config.autotune_alpha:
            def alpha_loss(la):
                return jnp.mean(jax.vmap(value.sac_temperature_loss, in_axes=(None, 0, None))(
                    la, log_prob, target_entropy))

            grad = jax.grad(alpha_loss)(state.log_alpha)
            updates, alpha_opt_state = alpha_opt.update(grad, state.alpha_opt, state.log_alpha)
            log_alpha = optax.apply_updates(state.log_alpha, updates)

        new_state = SACState(
            actor=actor, critic=critic,
            target_critic=value.polyak(state.target_critic, critic, config.tau),
            log_alpha=log_alpha, actor_opt=actor_opt_state, critic_opt=critic_opt_state,
            alpha_opt=alpha_opt_state, steps=state.steps + 1)
        info = {"critic_loss": c_loss, "actor_loss": a_loss, "alpha": jnp.exp(log_alpha),
                "q_mean": q.mean(), "entropy": -log_prob.mean()}
        return new_state, info

    def act(state: SACState, key, obs, explore: bool | jax.Array = True):
        """Sampled action when exploring, else the mean action tanh(mu) (SAC's evaluation):
        one actor pass for both."""
        mean, log_std = actor_net.apply(state.actor, obs)
        sampled, _ = squashed_gaussian(mean, log_std).sample_and_log_prob(seed=key)
        return nets.to_env(jnp.where(explore, sampled, jnp.tanh(mean)))

    return Learner(init=init, update=update, act=act)


# --- DQN ----------------------------------------------------------------------------------------

@struct.dataclass
class DQNConfig:
    """DQN hyperparameters. Defaults: double-Q, Huber loss, Adam 1e-3, Polyak tau 0.005."""

    hidden_sizes: tuple[int, ...] = static((64, 64))
    activation: str = static("relu")
    loss: str = static("huber")
    double_q: bool = static(True)
    target_update: str = static("polyak")
    target_period: int = static(500)
    learning_rate: float = 1e-3
    gamma: float = 0.99
    tau: float = 0.005
    max_grad_norm: float = 10.0

    def __post_init__(self):
        check_sizes("hidden_sizes", self.hidden_sizes)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("loss", self.loss, ("huber", "mse"))
        check_choice("target_update", self.target_update, ("polyak", "periodic"))
        check_int("target_period", self.target_period, 1)
        check("learning_rate", self.learning_rate, lambda v: v > 0, "learning_rate > 0")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v < 1), "0 <= gamma < 1")
        check("tau", self.tau, lambda v: (v > 0) & (v <= 1), "0 < tau <= 1")
        check("max_grad_norm", self.max_grad_norm, lambda v: v > 0, "max_grad_norm > 0")


@struct.dataclass
class DQNState:
    params: Any
    target_params: Any
    opt_state: Any
    steps: jax.Array


def make_dqn(config: DQNConfig, obs_dim: int, num_actions: int) -> Learner:
    """A DQN learner for ``obs_dim`` observations and ``num_actions`` discrete actions.

    Like SAC's, ``update`` also takes K sampled next states per (s, a) (``reward`` ``[B, K]``,
    ``next_obs`` ``[B, K, obs_dim]``) and regresses on their mean target."""
    net = MLP(config.hidden_sizes, num_actions, config.activation)
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(config.learning_rate))

    def init(key):
        params = net.init(key, jnp.zeros((1, obs_dim)))
        return DQNState(params=params, target_params=params, opt_state=optimizer.init(params),
                        steps=jnp.zeros((), jnp.int32))

    def update(state: DQNState, batch: Transition, key):
        del key
        obs, next_obs = batch.obs.astype(jnp.float32), batch.next_obs.astype(jnp.float32)
        action = batch.action.astype(jnp.int32).reshape(obs.shape[0])
        if batch.reward.ndim == 2:  # K model samples of s' per (s, a): deep Dyna's expectation
            B, K = batch.reward.shape
            flat = next_obs.reshape(B * K, -1)
            next_target = net.apply(state.target_params, flat)
            best = jnp.argmax(net.apply(state.params, flat) if config.double_q else next_target,
                              axis=-1)
            next_value = jnp.take_along_axis(next_target, best[:, None], axis=-1).reshape(B, K)
            target = jax.vmap(value.expected_target, in_axes=(0, 0, None, 0))(
                batch.reward.astype(jnp.float32), batch.terminated, config.gamma, next_value)
        else:
            next_target = net.apply(state.target_params, next_obs)
            if config.double_q:
                next_online = net.apply(state.params, next_obs)
                target = jax.vmap(value.double_q_target, in_axes=(0, 0, None, 0, 0))(
                    batch.reward.astype(jnp.float32), batch.terminated, config.gamma,
                    next_online, next_target)
            else:
                target = jax.vmap(value.q_learning_target, in_axes=(0, 0, None, 0))(
                    batch.reward.astype(jnp.float32), batch.terminated, config.gamma,
                    next_target)

        def loss_fn(params):
            q = jnp.take_along_axis(net.apply(params, obs), action[:, None], axis=1)[:, 0]
            return jnp.mean(jax.vmap(value.td_loss, in_axes=(0, 0, None))(q, target,
                                                                          config.loss)), q

        (loss, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        steps = state.steps + 1
        if config.target_update == "polyak":
            target_params = value.polyak(state.target_params, params, config.tau)
        else:
            target_params = value.periodic_update(state.target_params, params, steps,
                                                  config.target_period)
        info = {"q_loss": loss, "q_mean": q.mean()}
        return DQNState(params=params, target_params=target_params, opt_state=opt_state,
                        steps=steps), info

    def act(state: DQNState, key, obs, explore: bool | jax.Array = True,
            epsilon: float | jax.Array = 0.0):
        """Greedy action, or epsilon-greedy when exploring: obs [B, d] -> [B]."""
        key_explore, key_random = jax.random.split(key)
        greedy = jnp.argmax(net.apply(state.params, obs), axis=-1).astype(jnp.int32)
        batch = obs.shape[0]
        random = jax.random.randint(key_random, (batch,), 0, num_actions)
        use_random = explore & (jax.random.uniform(key_explore, (batch,)) < epsilon)
        return jnp.where(use_random, random, greedy)

    return Learner(init=init, update=update, act=act)


# --- NAF ----------------------------------------------------------------------------------------

@struct.dataclass
class NAFConfig:
    """Normalized advantage functions (Gu, Lillicrap, Sutskever & Levine 2016).

    Defaults follow the paper where it states them (Adam 1e-3, gamma 0.99, ReLU hidden layers
    of 200) with a faster target (tau 0.005 instead of 0.001) for short runs; exploration adds
    Gaussian noise of ``exploration_noise`` standard deviation (in units of half the action
    range) to mu(s), in place of the paper's Ornstein-Uhlenbeck process."""

    hidden_sizes: tuple[int, ...] = static((200, 200))
    activation: str = static("relu")
    learning_rate: float = 1e-3
    gamma: float = 0.99
    tau: float = 0.005
    exploration_noise: float = 0.3
    max_grad_norm: float = 10.0

    def __post_init__(self):
        check_sizes("hidden_sizes", self.hidden_sizes)
        check_choice("activation", self.activation, ACTIVATIONS)
        check("learning_rate", self.learning_rate, lambda v: v > 0, "learning_rate > 0")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v < 1), "0 <= gamma < 1")
        check("tau", self.tau, lambda v: (v > 0) & (v <= 1), "0 < tau <= 1")
        check("exploration_noise", self.exploration_noise, lambda v: v >= 0,
              "exploration_noise >= 0")
        check("max_grad_norm", self.max_grad_norm, lambda v: v > 0, "max_grad_norm > 0")


@struct.dataclass
class NAFState:
    params: Any
    target_params: Any
    opt_state: Any
    steps: jax.Array


def make_naf(config: NAFConfig, obs_dim: int, action_low: jax.Array,
             action_high: jax.Array) -> Learner:
    """A NAF learner: one network with a value head V(s), a linear mean head mu(s) and the
    d (d + 1) / 2 entries of L(s), so that ``Q(s, a) = V(s) - 1/2 (a - mu)^T L L^T (a - mu)``
    (``value.naf_q``, on actions rescaled to [-1, 1]) and the greedy action is mu(s) in closed
    form, clipped to the bounds when acting. The target is ``r + gamma (1 - d) V'(s')`` with a
    Polyak-averaged target network; the loss is the squared TD error.

    mu is not squashed (the paper's choice): a tanh saturates at the bounds, where its gradient
    vanishes (benchmarks/RESULTS.md has the Pendulum runs with and without a tanh)."""
    action_low = jnp.asarray(action_low, jnp.float32).reshape(-1)
    action_high = jnp.asarray(action_high, jnp.float32).reshape(-1)
    action_dim = action_low.shape[0]
    num_entries = action_dim * (action_dim + 1) // 2
    net = MLP(config.hidden_sizes, 1 + action_dim + num_entries, config.activation)
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(config.learning_rate))
    scale, shift = (action_high - action_low) / 2, (action_high + action_low) / 2

    def heads(params, obs):
        """V [B], mu [B, d] (unit scale, unbounded), L entries [B, d (d + 1) / 2]."""
        out = net.apply(params, obs)
        return out[:, 0], out[:, 1:1 + action_dim], out[:, 1 + action_dim:]

    def init(key):
        params = net.init(key, jnp.zeros((1, obs_dim)))
        return NAFState(params=params, target_params=params, opt_state=optimizer.init(params),
                        steps=jnp.zeros((), jnp.int32))

    def update(state: NAFState, batch: Transition, key):
        del key
        obs, next_obs = batch.obs.astype(jnp.float32), batch.next_obs.astype(jnp.float32)
        unit_action = (batch.action.astype(jnp.float32).reshape(obs.shape[0], action_dim)
                       - shift) / scale
        next_value, _, _ = heads(state.target_params, next_obs)
        target = jax.vmap(value.state_value_target, in_axes=(0, 0, None, 0))(
            batch.reward.astype(jnp.float32), batch.terminated, config.gamma, next_value)

        def loss_fn(params):
            v, mu, entries = heads(params, obs)
            q = jax.vmap(value.naf_q)(v, mu, entries, unit_action)
            loss = jax.vmap(value.td_loss, in_axes=(0, 0, None))(q, target, "mse")
            return jnp.mean(loss), (q, v)

        (loss, (q, v)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        info = {"q_loss": loss, "q_mean": q.mean(), "v_mean": v.mean()}
        return NAFState(params=params,
                        target_params=value.polyak(state.target_params, params, config.tau),
                        opt_state=opt_state, steps=state.steps + 1), info

    def act(state: NAFState, key, obs, explore: bool | jax.Array = True):
        """mu(s), plus Gaussian noise when exploring, clipped to the bounds: obs [B, d] ->
        [B, a]."""
        _, mu, _ = heads(state.params, obs)
        noise = config.exploration_noise * jax.random.normal(key, mu.shape)
        unit = jnp.clip(jnp.where(explore, mu + noise, mu), -1.0, 1.0)
        return shift + scale * unit

    return Learner(init=init, update=update, act=act)


def for_env(kind: str, sac: SACConfig | None, dqn: DQNConfig | None, env_spec,
            normalize_obs: bool = False) -> Learner:
    """SAC (``kind="sac"``) or DQN (``"dqn"``) for an ``interact.EnvSpec``; with
    ``normalize_obs``, wrapped in ``normalize_observations``."""
    if kind == "sac":
        learner = make_sac(sac, env_spec.obs_dim, env_spec.action_low, env_spec.action_high)
    else:
        learner = make_dqn(dqn, env_spec.obs_dim, env_spec.num_actions)
    return normalize_observations(learner, env_spec.obs_dim) if normalize_obs else learner


# --- observation normalisation ------------------------------------------------------------------

@struct.dataclass
class NormalizedState:
    """A learner's state and the running statistics of the observations it has trained on.

    Attributes:
      inner: the wrapped learner's state. mean, m2: ``[obs_dim]`` running mean and sum of
        squared deviations. count: observations seen (float scalar).
    """

    inner: Any
    mean: jax.Array
    m2: jax.Array
    count: jax.Array


def normalize_observations(learner: Learner, obs_dim: int, clip: float = 10.0,
                           eps: float = 1e-8) -> Learner:
    """Any learner with running observation normalisation: ``(obs - mean) / std``, clipped to
    ``[-clip, clip]``, in every update (``obs`` and ``next_obs`` of the minibatch) and in
    ``act``. The statistics are those of the observations of every minibatch trained on,
    merged batch by batch (Chan et al.'s parallel variance), and live in the learner's state,
    not the environment's: gymnax's auto-reset and the evaluation's fresh episodes would wipe
    statistics kept there. Before the first update the statistics are mean 0, std 1. For tasks
    whose observation scales differ by orders of magnitude (Brax's locomotion tasks), as Brax's
    own SAC does with ``normalize_observations``."""

    def init(key):
        zeros = jnp.zeros((obs_dim,), jnp.float32)
        return NormalizedState(inner=learner.init(key), mean=zeros, m2=zeros,
                               count=jnp.zeros((), jnp.float32))

    def normalize(state: NormalizedState, obs: jax.Array) -> jax.Array:
        return normalized(state, obs, clip, eps)

    def update(state: NormalizedState, batch: Transition, key):
        state = observation_stats_update(state, batch.obs)
        batch = batch.replace(obs=normalize(state, batch.obs),
                              next_obs=normalize(state, batch.next_obs))
        inner, info = learner.update(state.inner, batch, key)
        return state.replace(inner=inner), info

    def act(state: NormalizedState, key, obs, *args, **kwargs):
        return learner.act(state.inner, key, normalize(state, obs), *args, **kwargs)

    return Learner(init=init, update=update, act=act)


def observation_stats_update(state: NormalizedState, obs: jax.Array) -> NormalizedState:
    """``state`` with the observations ``obs [..., obs_dim]`` merged into its running mean and
    variance (Chan et al.'s parallel update; what ``normalize_observations`` does per update)."""
    rows = obs.reshape(-1, state.mean.shape[0])
    n = jnp.float32(rows.shape[0])
    batch_mean = rows.mean(0)
    batch_m2 = ((rows - batch_mean) ** 2).sum(0)
    total = state.count + n
    delta = batch_mean - state.mean
    return state.replace(mean=state.mean + delta * n / total,
                         m2=state.m2 + batch_m2 + delta ** 2 * state.count * n / total,
                         count=total)


def normalized(state: NormalizedState, obs: jax.Array, clip: float = 10.0,
               eps: float = 1e-8) -> jax.Array:
    """``(obs - mean) / std`` under ``state``'s statistics, clipped to ``[-clip, clip]``
    (mean 0, std 1 before any observation was seen)."""
    var = jnp.where(state.count > 0, state.m2 / jnp.maximum(state.count, 1.0), 1.0)
    return jnp.clip((obs - state.mean) / jnp.sqrt(var + eps), -clip, clip)


def linear_epsilon(steps: jax.Array, start: jax.Array, end: jax.Array,
                   decay_steps: int) -> jax.Array:
    """Epsilon decayed linearly from ``start`` to ``end`` over ``decay_steps`` steps."""
    frac = jnp.clip(steps / decay_steps, 0.0, 1.0)
    return start + frac * (end - start)


def resolve_learner(config, discrete: bool) -> None:
    """For a config with ``env``, ``learner``, ``sac``, ``dqn`` fields (in ``__post_init__``):
    ``learner="auto"`` becomes SAC for continuous actions and DQN for discrete ones, a mismatch
    is a ``ValueError``, and the chosen learner's missing config gets its defaults."""
    check_choice("learner", config.learner, ("auto", "sac", "dqn"))
    if config.learner == "auto":
        object.__setattr__(config, "learner", "dqn" if discrete else "sac")
    if (config.learner == "dqn") != discrete:
        kind = "discrete" if discrete else "continuous"
        raise ValueError(f"learner={config.learner!r} is invalid for env={config.env!r}: its "
                         f"actions are {kind} (allowed: {'dqn' if discrete else 'sac'} or "
                         "'auto')")
    if config.learner == "sac" and config.sac is None:
        object.__setattr__(config, "sac", SACConfig())
    if config.learner == "dqn" and config.dqn is None:
        object.__setattr__(config, "dqn", DQNConfig())
