"""Scan-based rollouts of a policy through a model: branched k-step, full horizon, fan-out.

MBPO (Janner et al. 2019, Section 4 and Algorithm 2) branches short rollouts of length k from
states of the real replay buffer, because model errors compound with the horizon; a rollout as
long as an episode is the full-trajectory rollout the notes warn against, kept here (same
function, ``horizon`` = episode length) for that ablation. ``fanout_step`` draws several next
states for one (s, a) at once, the samples of an expected target.

A ``model_step(key, obs [B, ...], action [B, ...]) -> (next_obs, reward [B], terminated [B])``
is any batched step function: ``purembrl.dynamics.make_model_step`` gives one for the learned
ensemble, and a wrapped true environment works the same way. A ``policy(key, obs [B, ...]) ->
action [B, ...]`` is batched too.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from purembrl.types import Transition

ModelStep = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]
Policy = Callable[[jax.Array, jax.Array], jax.Array]


def finite_rows(tree) -> jax.Array:
    """Per batch row: every float in every leaf ``[B, ...]`` is finite."""
    checks = [jnp.all(jnp.isfinite(x).reshape(x.shape[0], -1), axis=1)
              for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(checks), axis=0)


def branched_rollout(key: jax.Array, model_step: ModelStep, policy: Policy,
                     start_obs: jax.Array, horizon: int | jax.Array,
                     max_horizon: int | None = None) -> tuple[Transition, jax.Array]:
    """Roll ``policy`` through ``model_step`` from a batch of real start states.

    Args:
      key: PRNG key.
      model_step, policy: batched functions (see the module docstring).
      start_obs: ``[B, *obs_shape]`` real states to branch from.
      horizon: rollout length k; may be a traced integer (MBPO's schedule changes it during
        training) when ``max_horizon`` is given.
      max_horizon: static length of the outputs; steps at or beyond ``horizon`` are masked out,
        so changing ``horizon`` never recompiles. Defaults to ``horizon`` (then a Python int).
        With a traced ``horizon`` only its steps are computed (a ``fori_loop``, not reverse-mode
        differentiable; a Python-int ``horizon`` scans ``max_horizon`` steps, masked).

    Returns:
      ``(transitions, valid)``: a ``Transition`` with leaves ``[max_horizon, B, ...]`` and the
      mask ``[max_horizon, B]``. A step is valid when it is before ``horizon``, no earlier step
      of that branch was a predicted termination (the terminating step itself is valid), and
      all its numbers are finite (a branch stops at its first non-finite step).
    """
    if max_horizon is None:
        if not isinstance(horizon, int):
            raise ValueError("a traced horizon needs a static max_horizon")
        max_horizon = horizon
    if isinstance(max_horizon, bool) or not isinstance(max_horizon, int) or max_horizon < 1:
        raise ValueError(f"max_horizon={max_horizon!r} is invalid: allowed an integer >= 1")
    batch = start_obs.shape[0]

    def step(carry, inputs):
        obs, alive = carry
        t, step_key = inputs
        key_policy, key_model = jax.random.split(step_key)
        action = policy(key_policy, obs)
        next_obs, reward, terminated = model_step(key_model, obs, action)
        transition = Transition(obs=obs, action=action, reward=reward, next_obs=next_obs,
                                terminated=terminated.astype(bool))
        valid = alive & (t < horizon) & finite_rows(transition)
        alive = valid & ~transition.terminated
        # A dead branch keeps stepping from its last good state (shapes are static); its
        # transitions are masked out.
        next_obs = jnp.where(alive.reshape((batch,) + (1,) * (obs.ndim - 1)), next_obs, obs)
        return (next_obs, alive), (transition, valid)

    keys = jax.random.split(key, max_horizon)
    start = (start_obs, jnp.ones((batch,), bool))
    if isinstance(horizon, int):
        _, (transitions, valid) = jax.lax.scan(step, start, (jnp.arange(max_horizon), keys))
        return transitions, valid

    # A traced horizon: only its steps are computed (MBPO's schedule starts at 1 of 15), the
    # rest of the [max_horizon, B] output stays zero and masked. The same keys per step as the
    # scan above, so the valid transitions are the same.
    _, (transitions, valid) = _scan_prefix(step, start, keys, jnp.clip(horizon, 0, max_horizon))
    return transitions, valid


def _scan_prefix(step, carry, keys: jax.Array, length: jax.Array):
    """``jax.lax.scan(step, carry, (arange(L), keys))`` run for its first ``length`` (traced)
    steps only, ``L = len(keys)``: the stacked outputs ``[L, ...]`` are zero beyond ``length``.
    A ``fori_loop``, so it computes no more than ``length`` steps."""
    shapes = jax.eval_shape(lambda: step(carry, (jnp.int32(0), keys[0]))[1])
    zeros = jax.tree.map(lambda s: jnp.zeros((keys.shape[0], *s.shape), s.dtype), shapes)

    def body(t, loop_carry):
        inner, out = loop_carry
        inner, stepped = step(inner, (t, keys[t]))
        out = jax.tree.map(lambda o, x: jax.lax.dynamic_update_index_in_dim(o, x, t, 0),
                           out, stepped)
        return inner, out

    return jax.lax.fori_loop(0, length, body, (carry, zeros))


def fanout_step(key: jax.Array, model_step: ModelStep, obs: jax.Array, action: jax.Array,
                num_samples: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``num_samples`` (K) model samples of the next step for each (s, a) of a batch.

    Returns ``(next_obs [K, B, ...], reward [K, B], terminated [K, B])``: average a target over
    the leading axis to estimate its expectation over s' (Dyna's expected update).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} is invalid: allowed an integer >= 1")
    keys = jax.random.split(key, num_samples)
    return jax.vmap(lambda k: model_step(k, obs, action))(keys)


def branch_returns(transitions: Transition, valid: jax.Array, n: int,
                   gamma: float | jax.Array) -> Transition:
    """Each step of a branched rollout as an m-step return along its own branch, m <= n.

    The model-based multi-step targets of MBVE (Feinberg et al. 2018, Section 3: expand the
    value H steps through the model before bootstrapping), stored as transitions: step t of a
    branch becomes r_t + gamma r_{t+1} + ... + gamma^(m-1) r_{t+m-1} with the ``next_obs`` and
    ``terminated`` of step t+m-1 and ``discount`` = gamma^m, where m = min(n, L - t) and L is
    the branch's number of valid steps (it ends at the horizon, at a predicted termination or
    before its first non-finite step). A one-step backup carries a failure back one step per
    target period; these carry it up to n steps per backup, as n-step returns from the real
    buffer do (``purembrl.buffer.sample_n_step``). The returns follow the rollout's own
    (exploring) policy, uncorrected, as n-step DQN's do.

    Args:
      transitions: ``branched_rollout``'s output, leaves ``[H, B, ...]``.
      valid: its mask ``[H, B]`` (a prefix of each branch).
      n: the longest return, an integer >= 1; ``n = 1`` gives the transitions unchanged with
        ``discount`` = gamma.
      gamma: the learner's discount.

    Returns:
      A ``Transition`` ``[H, B, ...]`` with ``discount`` set; rows where ``valid`` is false
      are meaningless (keep them masked).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} is invalid: allowed an integer >= 1")
    if valid.ndim != 2 or transitions.reward.shape != valid.shape:
        raise ValueError(f"valid {valid.shape} and reward {transitions.reward.shape} must both "
                         "be [horizon, batch]")
    horizon = valid.shape[0]
    length = valid.sum(axis=0)                                             # [B]
    t = jnp.arange(horizon)[:, None]
    m = jnp.clip(jnp.minimum(n, length[None, :] - t), 1, None)             # [H, B]
    reward = jnp.zeros_like(transitions.reward)
    for i in range(min(n, horizon)):
        later = jnp.concatenate([transitions.reward[i:],
                                 jnp.zeros_like(transitions.reward[:i])])
        reward = reward + jnp.where(i < m, gamma ** i * later, 0.0)
    last = jnp.clip(t + m - 1, 0, horizon - 1)                             # [H, B]

    def at_last(x):
        index = last.reshape(last.shape + (1,) * (x.ndim - 2))
        return jnp.take_along_axis(x, index, axis=0)

    return transitions.replace(reward=reward, next_obs=at_last(transitions.next_obs),
                               terminated=at_last(transitions.terminated),
                               discount=(gamma ** m).astype(jnp.float32))


def flatten(transitions: Transition, valid: jax.Array) -> tuple[Transition, jax.Array]:
    """Merge the ``[horizon, B]`` axes into one, ready for ``buffer.add(state, batch, mask)``."""
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), transitions)
    return flat, valid.reshape(-1)
