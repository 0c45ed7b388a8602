"""Fitting the ensemble inside jit, as named steps: ``fit_data`` (split, standardise,
bootstrap keys), ``sgd_epoch`` over each member's bootstrap, ``fit_epoch`` with early stopping
on the holdout MSE, ``elite_members``; ``fit`` composes them (MBPO, Appendix C; PETS, Sec. 4).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purembrl import rng
from purembrl.buffer import BufferState
from purembrl.dynamics.model import (
    EnsembleConfig,
    EnsembleState,
    Normalizer,
    _masked_stats,
    check_config,
    model_inputs,
    model_targets,
    raw_outputs,
    train_step,
)

VAL_CHUNK = 256
"""Holdout rows scored at once by ``fit`` (only the chunks that hold real rows are scored)."""


class FitData(NamedTuple):
    """One fit's view of the buffer: every row's inputs and standardised targets, the random
    split into training and holdout rows, and the members' bootstrap keys.

    Attributes:
      x: ``[capacity, in]`` inputs in original units. y: ``[capacity, D]`` standardised targets.
      done: ``[capacity]`` termination targets. normalizer: statistics of the training rows.
      train_rows: ``[capacity]`` buffer rows, the ``num_train`` training rows first.
      num_train, num_holdout: row counts (int32 scalars).
      member_keys: ``[E]`` keys of the members' bootstraps.
      val_rows, val_w: ``[padded]`` holdout rows (the training rows when nothing is held out)
        and their 0/1 weights, padded to whole ``VAL_CHUNK``s. val_total: the weights' sum.
      num_val_chunks: the chunks that hold real rows (int32 scalar).
    """

    x: jax.Array
    y: jax.Array
    done: jax.Array
    normalizer: Normalizer
    train_rows: jax.Array
    num_train: jax.Array
    num_holdout: jax.Array
    member_keys: jax.Array
    val_rows: jax.Array
    val_w: jax.Array
    val_total: jax.Array
    num_val_chunks: jax.Array


def fit_data(state: EnsembleState, buffer_state: BufferState, key_split: jax.Array,
             key_boot: jax.Array, config: EnsembleConfig) -> FitData:
    """Split the filled rows at random into training and holdout rows (``holdout_ratio`` of
    them, at most ``max_holdout``), standardise inputs and targets by the training rows'
    statistics, and give each member a bootstrap key (PETS, Chua et al. 2018, Sec. 4.1).

    The uniform draws are prefix-consistent in the array length, so a buffer with more,
    unfilled, capacity holds out the same rows."""
    data, capacity, size = buffer_state.data, buffer_state.capacity, buffer_state.size
    x_all = model_inputs(data.obs, data.action, state.action_dim)
    y_all = model_targets(data, config.learn_reward)

    # Random split of the filled rows: unfilled rows sort last.
    filled = jnp.arange(capacity) < size
    order = jnp.argsort(jnp.where(filled, jax.random.uniform(key_split, (capacity,)), 2.0))
    # Static bound on the holdout rows: no more than a full buffer would hold out.
    holdout_cap = min(config.max_holdout, int(capacity * config.holdout_ratio))
    num_holdout = jnp.minimum(jnp.floor(size * config.holdout_ratio).astype(jnp.int32),
                              holdout_cap)
    num_train = jnp.maximum(size - num_holdout, 1)
    holdout_rows = order[:holdout_cap] if holdout_cap else jnp.zeros((1,), jnp.int32)
    holdout_w = (jnp.arange(holdout_rows.shape[0]) < num_holdout).astype(jnp.float32)
    train_rows = jnp.roll(order, -num_holdout)  # train rows first, num_train of them
    train_w = (jnp.arange(capacity) < num_train).astype(jnp.float32)

    in_mean, in_std = _masked_stats(x_all[train_rows], train_w)
    out_mean, out_std = _masked_stats(y_all[train_rows], train_w)
    member_keys = jax.vmap(lambda m: jax.random.fold_in(key_boot, m))(
        jnp.arange(config.num_members))

    # Holdout: all members see the same held-out rows (without holdout, the training rows),
    # scored in chunks of VAL_CHUNK rows, only as many as hold real rows: the static bound
    # above is sized for a full buffer, and scoring all of it every epoch would cost more than
    # the epoch's training while the buffer is small (MBPO's early fits).
    use_train_as_val = num_holdout == 0
    val_rows = jnp.where(use_train_as_val, train_rows[:holdout_rows.shape[0]], holdout_rows)
    val_w = jnp.where(use_train_as_val,
                      (jnp.arange(holdout_rows.shape[0]) < num_train).astype(jnp.float32),
                      holdout_w)
    num_val = (val_w > 0).sum()
    padded = -(-val_rows.shape[0] // VAL_CHUNK) * VAL_CHUNK
    return FitData(
        x=x_all, y=(y_all - out_mean) / out_std, done=data.terminated.astype(jnp.float32),
        normalizer=Normalizer(in_mean, in_std, out_mean, out_std), train_rows=train_rows,
        num_train=num_train, num_holdout=num_holdout, member_keys=member_keys,
        val_rows=jnp.pad(val_rows, (0, padded - val_rows.shape[0])),
        val_w=jnp.pad(val_w, (0, padded - val_w.shape[0])), val_total=val_w.sum(),
        num_val_chunks=jnp.maximum((num_val + VAL_CHUNK - 1) // VAL_CHUNK, 1))


def bootstrap_rows(data: FitData, pos: jax.Array) -> jax.Array:
    """Buffer rows ``[E, B]`` at bootstrap positions ``pos [E, B]``. Member m's bootstrap of
    the training part is ``num_train`` draws with replacement; its position p holds training
    row ``hash(key_m, p) mod num_train``, so no ``[E, capacity]`` table is stored and nothing
    depends on the buffer's capacity."""
    draw = jax.vmap(jax.vmap(lambda k, p: rng.randint(
        jax.random.fold_in(k, p), (), 0, data.num_train), in_axes=(None, 0)))(
        data.member_keys, pos)
    return data.train_rows[draw]


def holdout_mse(state: EnsembleState, config: EnsembleConfig, data: FitData,
                params) -> jax.Array:
    """Each member's mean squared error of its mean prediction on the holdout rows ``[E]``
    (standardised units)."""
    E = state.num_members

    def chunk(i, total):
        rows = jax.lax.dynamic_slice(data.val_rows, (i * VAL_CHUNK,), (VAL_CHUNK,))
        w = jax.lax.dynamic_slice(data.val_w, (i * VAL_CHUNK,), (VAL_CHUNK,))
        x = jnp.broadcast_to(data.x[rows], (E, VAL_CHUNK, data.x.shape[-1]))
        mean, _, _ = raw_outputs(state, config, params, data.normalizer, x)
        per_row = jnp.mean((mean - data.y[rows]) ** 2, axis=-1)  # [E, VAL_CHUNK]
        return total + (per_row * w).sum(-1)

    total = jax.lax.fori_loop(0, data.num_val_chunks, chunk, jnp.zeros((E,)))
    return total / jnp.maximum(data.val_total, 1.0)


def steps_per_epoch(data: FitData, config: EnsembleConfig) -> jax.Array:
    """Minibatches of ``batch_size`` per epoch: one pass over the training rows."""
    return jnp.maximum((data.num_train + config.batch_size - 1) // config.batch_size, 1)


def sgd_epoch(state: EnsembleState, config: EnsembleConfig, data: FitData, params, opt_state,
              key: jax.Array):
    """One epoch of minibatch Adam steps on every member's bootstrap, in blocks of
    ``config.sgd_block`` steps. Returns ``(params, opt_state, summed NLL [E])``."""
    E, B, block = config.num_members, config.batch_size, config.sgd_block
    num_steps = steps_per_epoch(data, config)

    def sgd_step(i, carry):
        params, opt_state, key, nll_sum = carry
        key, key_batch = jax.random.split(key)
        rows = bootstrap_rows(data, rng.randint(key_batch, (E, B), 0, data.num_train))
        params, opt_state, nll = train_step(state, config, params, opt_state, data.normalizer,
                                            data.x[rows], data.y[rows], data.done[rows])
        return params, opt_state, key, nll_sum + nll

    def one_block(b, carry):
        def masked_step(carry, j):
            i = b * block + j
            new = sgd_step(i, carry)
            return jax.tree.map(lambda n, o: jnp.where(i < num_steps, n, o), new, carry), None

        return jax.lax.scan(masked_step, carry, jnp.arange(block))[0]

    carry = (params, opt_state, key, jnp.zeros((E,)))
    if block == 1:
        carry = jax.lax.fori_loop(0, num_steps, sgd_step, carry)
    else:
        carry = jax.lax.fori_loop(0, (num_steps + block - 1) // block, one_block, carry)
    params, opt_state, _, nll_sum = carry
    return params, opt_state, nll_sum


class FitCarry(NamedTuple):
    """The state of ``fit``'s epoch loop: the parameters being trained and the best kept per
    member (early stopping), with the loop's counters.

    Attributes:
      params, opt_state: being trained. best_params, best_mse ``[E]``: each member's
        parameters at its best holdout MSE so far. key: for the next epoch. epochs: done.
      since: epochs since any member improved. train_nll ``[E]``: the last epoch's mean NLL.
      nonfinite: a loss or parameter was NaN or inf in some epoch.
    """

    params: Any
    opt_state: Any
    best_params: Any
    best_mse: jax.Array
    key: jax.Array
    epochs: jax.Array
    since: jax.Array
    train_nll: jax.Array
    nonfinite: jax.Array


def _select_members(improved: jax.Array, new, old):
    """Per member (leading axis of every leaf): ``new`` where ``improved``, else ``old``."""
    E = improved.shape[0]
    return jax.tree.map(
        lambda n, o: jnp.where(improved.reshape((E,) + (1,) * (n.ndim - 1)), n, o), new, old)


def fit_epoch(state: EnsembleState, config: EnsembleConfig, data: FitData,
              carry: FitCarry) -> FitCarry:
    """One epoch of training, then early-stopping bookkeeping: a member keeps its new
    parameters when its holdout MSE improved by more than ``improvement_threshold``
    (relatively) and every number is finite (MBPO's and PETS's stopping rule)."""
    E = config.num_members
    key, key_epoch = jax.random.split(carry.key)
    params, opt_state, nll_sum = sgd_epoch(state, config, data, carry.params, carry.opt_state,
                                           key_epoch)
    mse = holdout_mse(state, config, data, params)
    finite = jnp.isfinite(mse) & jnp.all(jnp.stack([
        jnp.all(jnp.isfinite(leaf).reshape(E, -1), axis=1)
        for leaf in jax.tree.leaves(params)]), axis=0)
    best_mse = carry.best_mse
    improved = finite & ((best_mse - mse) / jnp.where(jnp.isfinite(best_mse), best_mse, 1.0)
                         > config.improvement_threshold)
    improved = improved | (finite & ~jnp.isfinite(best_mse))
    return FitCarry(
        params=params, opt_state=opt_state,
        best_params=_select_members(improved, params, carry.best_params),
        best_mse=jnp.where(improved, mse, best_mse), key=key, epochs=carry.epochs + 1,
        since=jnp.where(improved.any(), 0, carry.since + 1),
        train_nll=nll_sum / steps_per_epoch(data, config),
        nonfinite=carry.nonfinite | ~finite.all() | ~jnp.isfinite(nll_sum).all())


def fit_start(state: EnsembleState, key: jax.Array) -> FitCarry:
    """The epoch loop's first carry: training starts from ``state``'s parameters, no member
    has a holdout score yet, ``key`` draws the epochs' minibatches."""
    E = state.num_members
    return FitCarry(params=state.params, opt_state=state.opt_state, best_params=state.params,
                    best_mse=jnp.full((E,), jnp.inf), key=key, epochs=jnp.zeros((), jnp.int32),
                    since=jnp.zeros((), jnp.int32), train_nll=jnp.zeros((E,)),
                    nonfinite=jnp.zeros((), bool))


def elite_members(best_mse: jax.Array, num_elites: int) -> jax.Array:
    """Indices of the ``num_elites`` members with the lowest finite holdout MSE."""
    return jnp.argsort(jnp.where(jnp.isfinite(best_mse), best_mse, jnp.inf))[
        :num_elites].astype(jnp.int32)


def fit(state: EnsembleState, buffer_state: BufferState, key: jax.Array,
        config: EnsembleConfig) -> tuple[EnsembleState, dict[str, jax.Array]]:
    """Fit the ensemble to the filled part of ``buffer_state`` (a buffer of ``Transition``s):
    split and standardise (``fit_data``), then epochs (``fit_epoch``) until ``max_epochs`` or
    ``patience`` epochs without improvement, then the elites (``elite_members``).

    Returns the new state and ``info``: ``train_nll`` (mean NLL of the last epoch, normalised
    units), ``val_mse`` per member (holdout MSE of its kept parameters, normalised units),
    ``elites``, ``epochs`` used, ``num_train`` / ``num_holdout`` rows and ``nonfinite`` (True if
    any loss or parameter was NaN or inf; a member whose holdout loss was never finite keeps its
    parameters from before the fit).
    """
    check_config(state, config)
    key_split, key_boot, key_epochs = jax.random.split(key, 3)
    data = fit_data(state, buffer_state, key_split, key_boot, config)
    end = jax.lax.while_loop(
        lambda c: (c.epochs < config.max_epochs) & (c.since < config.patience),
        lambda c: fit_epoch(state, config, data, c), fit_start(state, key_epochs))
    chosen = elite_members(end.best_mse, config.num_elites)
    new_state = state.replace(params=end.best_params, opt_state=end.opt_state,
                              normalizer=data.normalizer, elites=chosen)
    info = {"train_nll": end.train_nll, "val_mse": end.best_mse, "elites": chosen,
            "epochs": end.epochs, "num_train": data.num_train,
            "num_holdout": data.num_holdout, "nonfinite": end.nonfinite}
    return new_state, info
