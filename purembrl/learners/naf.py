"""Normalized advantage functions, NAF (Gu, Lillicrap, Sutskever & Levine 2016, Section 4): a
quadratic advantage whose maximiser is the network's mean head, so the greedy action is known in
closed form. The losses live in ``purembrl.value``.

mu is not squashed (the paper's choice): a tanh saturates at the bounds, where its gradient
vanishes (benchmarks/RESULTS.md has the Pendulum runs with and without a tanh).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purembrl import value
from purembrl.config import check, check_choice, check_sizes, check_types, static
from purembrl.learners.base import Learner
from purembrl.networks import ACTIVATIONS, MLP
from purembrl.types import Transition


@struct.dataclass
class NAFConfig:
    """Normalized advantage functions (Gu, Lillicrap, Sutskever & Levine 2016).

    Defaults follow the paper where it states them (Adam 1e-3, gamma 0.99, ReLU hidden layers
    of 200) with a faster target (tau 0.005 instead of 0.001) for short runs; exploration adds
    Gaussian noise of ``exploration_noise`` standard deviation (in units of half the action
    range) to mu(s), in place of the paper's Ornstein-Uhlenbeck process.

    ``mu_bound_penalty``: the weight of ``mean ||relu(|mu| - 1)||^2``, a quadratic penalty on
    the unit-scale mu outside the action bounds, added to the TD loss (0: none). Without it
    mu can leave the bounds for good: every stored action then lies on one side of mu, the fit
    explains Q's variation over them with a tiny P(s) = L L^T and a far mu, P's exp-
    parameterised diagonal then has no gradient left, and the clipped greedy action is a bound
    in every state (benchmarks/RESULTS.md, "MBA's advantage collapse"). The weight is static:
    the term is only built when it is non-zero, so a run without it compiles as before.

    Attributes:
      hidden_sizes: widths of the shared hidden layers of V, mu and L.
      activation: hidden activation, one of ``purembrl.networks.ACTIVATIONS``.
      learning_rate: Adam step size.
      gamma: discount.
      tau: Polyak rate of the target V.
      exploration_noise: standard deviation of the Gaussian noise added to mu(s) while acting,
        in units of half the action range.
      max_grad_norm: global gradient-norm clip.
      mu_bound_penalty: weight of the quadratic penalty on mu outside the action bounds (0:
        none; see above).
    """

    hidden_sizes: tuple[int, ...] = static((200, 200))
    activation: str = static("relu")
    learning_rate: float = 1e-3
    gamma: float = 0.99
    tau: float = 0.005
    exploration_noise: float = 0.3
    max_grad_norm: float = 10.0
    mu_bound_penalty: float = static(0.0)

    def __post_init__(self):
        check_types(self)
        check_sizes("hidden_sizes", self.hidden_sizes)
        check_choice("activation", self.activation, ACTIVATIONS)
        check("learning_rate", self.learning_rate, lambda v: v > 0, "learning_rate > 0")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v < 1), "0 <= gamma < 1")
        check("tau", self.tau, lambda v: (v > 0) & (v <= 1), "0 < tau <= 1")
        check("exploration_noise", self.exploration_noise, lambda v: v >= 0,
              "exploration_noise >= 0")
        check("max_grad_norm", self.max_grad_norm, lambda v: v > 0, "max_grad_norm > 0")
        check("mu_bound_penalty", self.mu_bound_penalty, lambda v: v >= 0,
              "mu_bound_penalty >= 0")


@struct.dataclass
class NAFState:
    params: Any
    target_params: Any
    opt_state: Any
    steps: jax.Array


def value_targets(next_value: Callable[[jax.Array], jax.Array], batch: Transition,
                  gamma) -> jax.Array:
    """NAF's targets ``r + gamma (1 - d) V'(s')`` ``[B]``, ``next_value`` mapping observations
    ``[N, obs_dim]`` to V' ``[N]``; with K sampled next states per (s, a) (``reward``
    ``[B, K]``, ``next_obs`` ``[B, K, obs_dim]``) the mean of their targets (deep Dyna's
    expectation, ``value.expected_target``)."""
    next_obs = batch.next_obs.astype(jnp.float32)
    if batch.reward.ndim == 2:
        B, K = batch.reward.shape
        next_v = next_value(next_obs.reshape(B * K, -1))
        return jax.vmap(value.expected_target, in_axes=(0, 0, None, 0))(
            batch.reward.astype(jnp.float32), batch.terminated, gamma, next_v.reshape(B, K))
    next_v = next_value(next_obs)
    return jax.vmap(value.state_value_target, in_axes=(0, 0, None, 0))(
        batch.reward.astype(jnp.float32), batch.terminated, gamma, next_v)


def make_naf(config: NAFConfig, obs_dim: int, action_low: jax.Array,
             action_high: jax.Array) -> Learner:
    """A NAF learner: one network with a value head V(s), a linear mean head mu(s) and the
    d (d + 1) / 2 entries of L(s), so that ``Q(s, a) = V(s) - 1/2 (a - mu)^T L L^T (a - mu)``
    (``value.naf_q``, on actions rescaled to [-1, 1]) and the greedy action is mu(s) in closed
    form, clipped to the bounds when acting. The target is ``r + gamma (1 - d) V'(s')`` with a
    Polyak-averaged target network; the loss is the squared TD error. A batch with K model
    samples of s' per (s, a) (``reward``, ``terminated`` ``[B, K]``, ``next_obs``
    ``[B, K, obs_dim]``) regresses on the mean target over them (deep Dyna,
    ``value.expected_target``)."""
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
        obs = batch.obs.astype(jnp.float32)
        unit_action = (batch.action.astype(jnp.float32).reshape(obs.shape[0], action_dim)
                       - shift) / scale
        target = value_targets(lambda o: heads(state.target_params, o)[0], batch, config.gamma)

        def loss_fn(params):
            v, mu, entries = heads(params, obs)
            q = jax.vmap(value.naf_q)(v, mu, entries, unit_action)
            loss = jnp.mean(jax.vmap(value.td_loss, in_axes=(0, 0, None))(q, target, "mse"))
            if config.mu_bound_penalty:
                outside = jax.nn.relu(jnp.abs(mu) - 1.0)
                loss = loss + config.mu_bound_penalty * jnp.mean(jnp.sum(outside ** 2, -1))
            return loss, (q, v)

        (loss, (q, v)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        info = {"q_loss": loss, "q_mean": q.mean(), "v_mean": v.mean()}
        return NAFState(params=params,
                        target_params=value.polyak(state.target_params, params, config.tau),
                        opt_state=opt_state, steps=state.steps + 1), info

    def act(state: NAFState, key, obs, explore: bool | jax.Array = True, step=0):
        """mu(s), plus Gaussian noise when exploring, clipped to the bounds: obs [B, d] ->
        [B, a]."""
        _, mu, _ = heads(state.params, obs)
        noise = config.exploration_noise * jax.random.normal(key, mu.shape)
        unit = jnp.clip(jnp.where(explore, mu + noise, mu), -1.0, 1.0)
        return shift + scale * unit

    return Learner(init=init, update=update, act=act)
