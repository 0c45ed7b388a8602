"""Running observation normalisation for any learner (as Brax's SAC does with
``normalize_observations``): the statistics are a preprocessing of the learner's inputs, kept in
its state."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purembrl.learners.base import CriticTargets, Learner
from purembrl.types import Transition


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

    def update(state: NormalizedState, batch: Transition | CriticTargets, key):
        real = batch.real if isinstance(batch, CriticTargets) else batch
        state = observation_stats_update(state, real.obs)
        real = real.replace(obs=normalize(state, real.obs),
                            next_obs=normalize(state, real.next_obs))
        if isinstance(batch, CriticTargets):  # the caller's targets see normalised inputs too
            build = batch.build
            batch = CriticTargets(real, lambda inner, preprocess: build(
                inner, lambda obs: preprocess(normalize(state, obs))))
        else:
            batch = real
        inner, info = learner.update(state.inner, batch, key)
        return state.replace(inner=inner), info

    def act(state: NormalizedState, key, obs, explore=True, step=0):
        return learner.act(state.inner, key, normalize(state, obs), explore, step)

    return Learner(init=init, update=update, act=act)


def observation_stats_update(state: NormalizedState, obs: jax.Array) -> NormalizedState:
    """``state`` with the observations ``obs [..., obs_dim]`` merged into its running mean and
    variance (Chan et al.'s parallel update; what ``normalize_observations`` does per update)."""
    rows = obs.reshape(-1, state.mean.shape[0])
    n = jnp.float32(rows.shape[0])
    batch_mean = pairwise_sum(rows) / n
    batch_m2 = pairwise_sum((rows - batch_mean) ** 2)
    total = state.count + n
    delta = batch_mean - state.mean
    return state.replace(mean=state.mean + delta * n / total,
                         m2=state.m2 + batch_m2 + delta ** 2 * state.count * n / total,
                         count=total)


def pairwise_sum(x: jax.Array) -> jax.Array:
    """The sum over the leading axis in one fixed pairwise order, ``x[:h] + x[h:]`` halvings
    of the rows zero-padded to a power of two: elementwise adds only, so every CPU gives the
    same bits. XLA compiles its reductions for the host CPU and chooses their order for it,
    while the running statistics feed every later update."""
    n = x.shape[0]
    size = 1 << max(n - 1, 0).bit_length()
    if size > n:
        x = jnp.concatenate([x, jnp.zeros((size - n, *x.shape[1:]), x.dtype)])
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        x = x[:half] + x[half:]
    return x[0]


def normalized(state: NormalizedState, obs: jax.Array, clip: float = 10.0,
               eps: float = 1e-8) -> jax.Array:
    """``(obs - mean) / std`` under ``state``'s statistics, clipped to ``[-clip, clip]``
    (mean 0, std 1 before any observation was seen).

    The division is by a correctly rounded square root: XLA rewrites ``x / sqrt(v)`` into
    ``x * rsqrt(v)``, which the CPU backend computes from the hardware's approximate
    reciprocal square root (``rsqrtss``) and a Newton step, and that approximation's bits
    differ between vendors (an Intel Xeon and an AMD EPYC gave different training runs). The
    optimisation barrier keeps the rewrite from seeing the pattern."""
    var = jnp.where(state.count > 0, state.m2 / jnp.maximum(state.count, 1.0), 1.0)
    std = jax.lax.optimization_barrier(jnp.sqrt(var + eps))
    return jnp.clip((obs - state.mean) / std, -clip, clip)
