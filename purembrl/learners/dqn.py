"""DQN (Mnih et al. 2015) with the double-Q target (van Hasselt et al. 2016), Huber or squared
loss, epsilon-greedy acting on a linear schedule kept in its config, Polyak or periodic target
updates, optional gradient clipping. The losses live in ``purembrl.value``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purembrl import rng, value
from purembrl.config import check, check_choice, check_int, check_sizes, check_types, static
from purembrl.learners.base import Learner, linear_epsilon
from purembrl.networks import ACTIVATIONS, MLP
from purembrl.types import Transition


@struct.dataclass
class DQNConfig:
    """DQN hyperparameters. Defaults: double-Q, Huber loss, Adam 1e-3, Polyak tau 0.005.

    Exploration: epsilon decays linearly from ``eps_start`` to ``eps_end`` over
    ``eps_decay_steps`` trained steps (the ``step`` that ``act`` is given).

    Learning rate: constant (``lr_decay_updates=0``), or decayed linearly from
    ``learning_rate`` to ``learning_rate * lr_end_fraction`` over ``lr_decay_updates``
    updates and constant after (optax.linear_schedule), the annealing PPO and many DQN
    baselines use so that the final policy stops moving.

    Attributes:
      hidden_sizes: widths of the Q-network's hidden layers.
      activation: hidden activation, one of ``purembrl.networks.ACTIVATIONS``.
      loss: the TD loss, ``"huber"`` or ``"mse"``.
      double_q: the online network picks the target's action (van Hasselt et al. 2016).
      target_update: ``"polyak"`` (every update, rate ``tau``) or ``"periodic"`` (a copy every
        ``target_period`` updates).
      target_period: updates between periodic target copies.
      learning_rate: Adam step size (the start of the decay, when there is one).
      gamma: discount.
      tau: Polyak rate of the target network.
      max_grad_norm: global gradient-norm clip.
      eps_start: exploration rate at step 0.
      eps_end: exploration rate after ``eps_decay_steps``.
      eps_decay_steps: trained steps of the linear epsilon decay.
      lr_decay_updates: updates of the linear learning-rate decay (0: a constant rate).
      lr_end_fraction: the rate at the decay's end, as a fraction of ``learning_rate``.
    """

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
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = static(10_000)
    lr_decay_updates: int = static(0)
    lr_end_fraction: float = 0.0

    def __post_init__(self):
        check_types(self)
        check_sizes("hidden_sizes", self.hidden_sizes)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("loss", self.loss, ("huber", "mse"))
        check_choice("target_update", self.target_update, ("polyak", "periodic"))
        check_int("target_period", self.target_period, 1)
        check("learning_rate", self.learning_rate, lambda v: v > 0, "learning_rate > 0")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v < 1), "0 <= gamma < 1")
        check("tau", self.tau, lambda v: (v > 0) & (v <= 1), "0 < tau <= 1")
        check("max_grad_norm", self.max_grad_norm, lambda v: v > 0, "max_grad_norm > 0")
        for name in ("eps_start", "eps_end"):
            check(name, getattr(self, name), lambda v: (v >= 0) & (v <= 1), f"0 <= {name} <= 1")
        check_int("eps_decay_steps", self.eps_decay_steps, 1)
        check_int("lr_decay_updates", self.lr_decay_updates, 0)
        check("lr_end_fraction", self.lr_end_fraction, lambda v: (v >= 0) & (v <= 1),
              "0 <= lr_end_fraction <= 1")


@struct.dataclass
class DQNState:
    params: Any
    target_params: Any
    opt_state: Any
    steps: jax.Array


def dqn_targets(net: MLP, config: DQNConfig, state: DQNState, batch: Transition) -> jax.Array:
    """The regression targets ``[B]`` of a batch: the double-Q (or plain Q-learning) target
    from the target network, or with K sampled next states per (s, a) (``reward`` ``[B, K]``,
    ``next_obs`` ``[B, K, obs_dim]``) the mean of their targets (``value.expected_target``,
    deep Dyna's expectation over s'). A batch with ``discount`` (``[B]``, n-step returns from
    ``buffer.sample_n_step``, or deep Dyna's n-step heads) bootstraps with it in place of
    gamma: with K samples the target is ``mean_k r_k + discount (1 - d_k) V(s'_k)``."""
    next_obs = batch.next_obs.astype(jnp.float32)
    reward = batch.reward.astype(jnp.float32)
    gamma, gamma_axis = ((config.gamma, None) if batch.discount is None
                         else (batch.discount.astype(jnp.float32), 0))
    if batch.reward.ndim == 2:
        B, K = batch.reward.shape
        flat = next_obs.reshape(B * K, -1)
        next_target = net.apply(state.target_params, flat)
        best = jnp.argmax(net.apply(state.params, flat) if config.double_q else next_target,
                          axis=-1)
        next_value = jnp.take_along_axis(next_target, best[:, None], axis=-1).reshape(B, K)
        return jax.vmap(value.expected_target, in_axes=(0, 0, gamma_axis, 0))(
            reward, batch.terminated, gamma, next_value)
    next_target = net.apply(state.target_params, next_obs)
    if config.double_q:
        next_online = net.apply(state.params, next_obs)
        return jax.vmap(value.double_q_target, in_axes=(0, 0, gamma_axis, 0, 0))(
            reward, batch.terminated, gamma, next_online, next_target)
    return jax.vmap(value.q_learning_target, in_axes=(0, 0, gamma_axis, 0))(
        reward, batch.terminated, gamma, next_target)


def learning_rate(config: DQNConfig):
    """Adam's step size: the constant ``learning_rate``, or its linear decay to
    ``learning_rate * lr_end_fraction`` over ``lr_decay_updates`` updates."""
    if config.lr_decay_updates == 0:
        return config.learning_rate
    return optax.linear_schedule(config.learning_rate,
                                 config.learning_rate * config.lr_end_fraction,
                                 config.lr_decay_updates)


def make_dqn(config: DQNConfig, obs_dim: int, num_actions: int) -> Learner:
    """A DQN learner for ``obs_dim`` observations and ``num_actions`` discrete actions.

    Like SAC's, ``update`` also takes K sampled next states per (s, a) (``reward`` ``[B, K]``,
    ``next_obs`` ``[B, K, obs_dim]``) and regresses on their mean target."""
    net = MLP(config.hidden_sizes, num_actions, config.activation)
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(learning_rate(config)))

    def init(key):
        params = net.init(key, jnp.zeros((1, obs_dim)))
        return DQNState(params=params, target_params=params, opt_state=optimizer.init(params),
                        steps=jnp.zeros((), jnp.int32))

    def update(state: DQNState, batch: Transition, key):
        del key
        obs = batch.obs.astype(jnp.float32)
        action = batch.action.astype(jnp.int32).reshape(obs.shape[0])
        target = dqn_targets(net, config, state, batch)

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
            step: int | jax.Array = 0):
        """Greedy action, or epsilon-greedy when exploring, epsilon after ``step`` trained
        steps: obs [B, d] -> [B]."""
        epsilon = linear_epsilon(step, config.eps_start, config.eps_end, config.eps_decay_steps)
        key_explore, key_random = jax.random.split(key)
        greedy = jnp.argmax(net.apply(state.params, obs), axis=-1).astype(jnp.int32)
        batch = obs.shape[0]
        random = rng.randint(key_random, (batch,), 0, num_actions)
        use_random = explore & (jax.random.uniform(key_explore, (batch,)) < epsilon)
        return jnp.where(use_random, random, greedy)

    return Learner(init=init, update=update, act=act)
