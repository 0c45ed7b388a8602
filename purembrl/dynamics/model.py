"""The ensemble itself: its config, state, predictions, samples and one training step.

The model of ``purembrl.dynamics`` (the package docstring describes it); ``fit`` lives in
``purembrl.dynamics.fitting``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from purembrl import rng
from purembrl.config import check, check_choice, check_int, check_sizes, check_types, static
from purembrl.networks import ACTIVATIONS, MLP, ensemble_apply, ensemble_init

RewardFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@struct.dataclass
class EnsembleConfig:
    """Ensemble hyperparameters; defaults are MBPO's (Janner et al. 2019, Appendix C).

    Attributes:
      num_members: E, ensemble size. num_elites: members used for sampling.
      hidden_sizes: widths of the hidden layers.
      activation: hidden activation, one of ``purembrl.networks.ACTIVATIONS``.
      learn_reward: the members also predict the reward (off when ``reward_fn`` is given to
        ``sample_step``).
      learn_termination: the members also predict a termination logit (off when
        ``termination_fn`` is given to ``sample_step``).
      learning_rate: Adam step size. weight_decay: L2 coefficient per layer (hidden..., output);
        a single float applies to every layer; None (default) gives MBPO's
        (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4) for 4 hidden layers, and the same rise from 2.5e-5
        to 1e-4 spread over the layers of other depths.
      logvar_penalty: weight of the log-variance bound penalty.
      batch_size: minibatch per member.
      holdout_ratio: share of the data held out to validate each fit.
      max_holdout: most transitions held out.
      max_epochs: bound on epochs per fit (jit needs one). patience: epochs without improvement
        before stopping. improvement_threshold: relative improvement that counts (0.01 = 1%).
      sgd_block: SGD steps per iteration of an epoch's minibatch loop, a performance setting
        that leaves the fit unchanged (tested). The loop's length depends on the buffer's size,
        so it is a ``while`` loop; on a GPU each of its iterations waits for the host to read
        the loop's condition, and blocks of ``sgd_block`` steps (a scan; steps past the epoch's
        end computed but masked out) wait once per block. Default 1: on the CPU blocks only
        cost (``benchmarks/mbpo_profile.py --set model.sgd_block=16`` times it; RESULTS.md).
    """

    num_members: int = static(7)
    num_elites: int = static(5)
    hidden_sizes: tuple[int, ...] = static((200, 200, 200, 200))
    activation: str = static("swish")
    learn_reward: bool = static(True)
    learn_termination: bool = static(True)
    batch_size: int = static(256)
    holdout_ratio: float = static(0.2)
    max_holdout: int = static(5000)
    max_epochs: int = static(100)
    patience: int = static(5)
    learning_rate: float = 1e-3
    weight_decay: tuple[float, ...] | float | None = None
    logvar_penalty: float = 0.01
    improvement_threshold: float = 0.01
    sgd_block: int = static(1)

    def __post_init__(self):
        check_types(self)
        check_int("num_members", self.num_members, 1)
        check_int("num_elites", self.num_elites, 1, self.num_members)
        check_sizes("hidden_sizes", self.hidden_sizes)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_int("batch_size", self.batch_size, 1)
        check("holdout_ratio", self.holdout_ratio, lambda v: (v >= 0) & (v < 1),
              "0 <= holdout_ratio < 1")
        check_int("max_holdout", self.max_holdout, 0)
        check_int("max_epochs", self.max_epochs, 1)
        check_int("patience", self.patience, 1)
        check("learning_rate", self.learning_rate, lambda v: v > 0, "learning_rate > 0")
        if isinstance(self.weight_decay, tuple | list) and len(self.weight_decay) != len(
                self.hidden_sizes) + 1:
            raise ValueError(f"weight_decay={self.weight_decay!r} is invalid: allowed a float or "
                             f"one value per layer ({len(self.hidden_sizes) + 1})")
        if self.weight_decay is not None:  # None: the default per-layer decay
            check("weight_decay", self.weight_decay, lambda v: v >= 0, "weight_decay >= 0")
        check("logvar_penalty", self.logvar_penalty, lambda v: v >= 0, "logvar_penalty >= 0")
        check("improvement_threshold", self.improvement_threshold, lambda v: v >= 0,
              "improvement_threshold >= 0")
        check_int("sgd_block", self.sgd_block, 1)


@struct.dataclass
class Normalizer:
    """Per-feature mean and scale of the inputs and of the targets."""

    in_mean: jax.Array
    in_std: jax.Array
    out_mean: jax.Array
    out_std: jax.Array


@struct.dataclass
class EnsembleState:
    """Everything the model carries between fits.

    Attributes:
      params: ``{"net": stacked MLP params, "max_logvar": [E, D], "min_logvar": [E, D]}``, every
        leaf with a leading member axis.
      opt_state: Adam's state (kept across fits: the model is trained further, not afresh).
      normalizer: input and target statistics of the last fit.
      elites: indices of the ``num_elites`` best members ``[num_elites]``.
      obs_dim, action_dim: the sizes of the data the model was built for (static): the
        environment's, not hyperparameters. The network's structure (widths, activation, which
        heads) is the ``EnsembleConfig``'s, passed to every function that runs the network;
        ``check_config`` refuses a config whose structure does not match the arrays.
    """

    params: Any
    opt_state: Any
    normalizer: Normalizer
    elites: jax.Array
    obs_dim: int = static(0)
    action_dim: int = static(0)

    @property
    def target_dim(self) -> int:
        return self.params["max_logvar"].shape[-1]

    @property
    def num_members(self) -> int:
        return self.params["max_logvar"].shape[0]


def _optimizer(config: EnsembleConfig) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate)


def network(config: EnsembleConfig, target_dim: int) -> MLP:
    """One member's network: ``[obs, action] -> [mean (target_dim), raw log-variance
    (target_dim), termination logit (when learned)]``."""
    out_size = 2 * target_dim + int(config.learn_termination)
    return MLP(hidden_sizes=tuple(config.hidden_sizes), out_size=out_size,
               activation=config.activation)


def check_config(state: EnsembleState, config: EnsembleConfig) -> None:
    """``ValueError`` naming each field of ``config`` that does not fit ``state``'s arrays
    (members, heads, layer widths): a state is run with the config it was initialised with."""
    layers = state.params["net"]["params"]
    widths = tuple(layers[f"Dense_{i}"]["kernel"].shape[-1] for i in range(len(layers)))
    differ = [f"{name}={mine!r} (the state's: {theirs!r})" for name, mine, theirs in (
        ("num_members", config.num_members, state.num_members),
        ("hidden_sizes", tuple(config.hidden_sizes), widths[:-1]),
        ("learn_reward", config.learn_reward, state.target_dim > state.obs_dim),
        ("learn_termination", config.learn_termination, widths[-1] > 2 * state.target_dim),
    ) if mine != theirs]
    if differ:
        raise ValueError(f"config does not match the model state: {', '.join(differ)}; run the "
                         "state with the config it was initialised with")


def init(key: jax.Array, config: EnsembleConfig, obs_dim: int, action_dim: int
         ) -> EnsembleState:
    """A fresh ensemble for ``obs_dim``-dimensional observations and ``action_dim`` actions."""
    for name, value in (("obs_dim", obs_dim), ("action_dim", action_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: allowed an integer >= 1")
    target_dim = obs_dim + int(config.learn_reward)
    E = config.num_members
    params = {"max_logvar": jnp.full((E, target_dim), 0.5),  # PETS' initial bounds
              "min_logvar": jnp.full((E, target_dim), -10.0),
              "net": ensemble_init(network(config, target_dim), key, E, obs_dim + action_dim)}
    in_dim = obs_dim + action_dim
    normalizer = Normalizer(jnp.zeros(in_dim), jnp.ones(in_dim), jnp.zeros(target_dim),
                            jnp.ones(target_dim))
    return EnsembleState(params=params, opt_state=_optimizer(config).init(params),
                         normalizer=normalizer,
                         elites=jnp.arange(config.num_elites, dtype=jnp.int32),
                         obs_dim=obs_dim, action_dim=action_dim)


# --- pieces of the loss, unbatched where that is natural -----------------------------------

def gaussian_nll(mean: jax.Array, logvar: jax.Array, target: jax.Array) -> jax.Array:
    """Negative log-likelihood of ``target`` under N(mean, exp(logvar)), summed over the last
    axis: 0.5 * sum((target - mean)^2 * exp(-logvar) + logvar + log(2 pi))."""
    chex.assert_equal_shape([mean, logvar, target])
    return 0.5 * jnp.sum((target - mean) ** 2 * jnp.exp(-logvar) + logvar + jnp.log(2 * jnp.pi),
                         axis=-1)


def bound_logvar(raw: jax.Array, max_logvar: jax.Array, min_logvar: jax.Array) -> jax.Array:
    """PETS' soft bounds: a smooth clamp of ``raw`` into (min_logvar, max_logvar)."""
    logvar = max_logvar - jax.nn.softplus(max_logvar - raw)
    return min_logvar + jax.nn.softplus(logvar - min_logvar)


def one_hot_actions(action: jax.Array, action_dim: int) -> jax.Array:
    """Float action vectors: integer actions ``[...]`` one-hot to ``[..., action_dim]``, float
    actions ``[..., action_dim]`` unchanged (scalars get a trailing axis)."""
    if jnp.issubdtype(action.dtype, jnp.integer):
        return jax.nn.one_hot(action, action_dim)
    action = action.astype(jnp.float32)
    return action[..., None] if action_dim == 1 and action.ndim == 0 else action


def model_inputs(obs: jax.Array, action: jax.Array, action_dim: int) -> jax.Array:
    """``[obs, action]`` for a batch: obs ``[B, obs_dim]``, action ``[B]`` (int) or ``[B, A]``."""
    action = one_hot_actions(action, action_dim)
    if action.ndim == obs.ndim - 1:
        action = action[..., None]
    return jnp.concatenate([obs.astype(jnp.float32), action], axis=-1)


def model_targets(transition, learn_reward: bool) -> jax.Array:
    """``[reward, next_obs - obs]`` (or ``[next_obs - obs]``) for a batch of transitions."""
    delta = (transition.next_obs - transition.obs).astype(jnp.float32)
    if not learn_reward:
        return delta
    return jnp.concatenate([transition.reward[..., None].astype(jnp.float32), delta], axis=-1)


def raw_outputs(state: EnsembleState, config: EnsembleConfig, params, normalizer: Normalizer,
                x: jax.Array):
    """Normalised mean, bounded log-variance ``[E, B, D]`` and termination logit ``[E, B]``
    (None when not learned) of inputs ``x [E, B, in]`` in original units."""
    d = state.target_dim
    out = ensemble_apply(network(config, d), params["net"],
                         (x - normalizer.in_mean) / normalizer.in_std)
    mean = out[..., :d]
    logvar = bound_logvar(out[..., d:2 * d], params["max_logvar"][:, None],
                          params["min_logvar"][:, None])
    logit = out[..., 2 * d] if config.learn_termination else None
    return mean, logvar, logit


def predict(state: EnsembleState, config: EnsembleConfig, obs: jax.Array, action: jax.Array):
    """Per-member Gaussian over the targets, in original units.

    Args:
      state, config: the ensemble and the config it was initialised with.
      obs: ``[B, obs_dim]``; action: ``[B, action_dim]`` floats or ``[B]`` integers.

    Returns:
      ``(mean, logvar)``, each ``[E, B, target_dim]`` over ``[reward, next_obs - obs]``
      (``[next_obs - obs]`` when the reward is not learned).
    """
    mean, logvar, _ = predict_full(state, config, obs, action)
    return mean, logvar


def predict_full(state: EnsembleState, config: EnsembleConfig, obs: jax.Array,
                 action: jax.Array):
    """``predict`` plus the termination logits ``[E, B]`` (None when not learned)."""
    check_config(state, config)
    chex.assert_rank(obs, 2)
    chex.assert_axis_dimension(obs, 1, state.obs_dim)
    x = model_inputs(obs, action, state.action_dim)
    x = jnp.broadcast_to(x, (state.num_members, *x.shape))
    mean, logvar, logit = raw_outputs(state, config, state.params, state.normalizer, x)
    n = state.normalizer
    return mean * n.out_std + n.out_mean, logvar + 2 * jnp.log(n.out_std), logit


def sample_step(state: EnsembleState, config: EnsembleConfig, key: jax.Array, obs: jax.Array,
                action: jax.Array, *, deterministic: bool = False,
                reward_fn: RewardFn | None = None, termination_fn: RewardFn | None = None,
                obs_fn=None):
    """One model step for a batch: ``(next_obs [B, obs_dim], reward [B], terminated [B])``.

    Each sample uses one elite drawn at random (MBPO's choice) and samples its Gaussian, or
    takes its mean when ``deterministic``. ``reward_fn(obs, action, next_obs)`` and
    ``termination_fn(obs, action, next_obs)``, when given, replace the learned reward and
    termination (required when those are not learned). A learned termination is
    ``sigmoid(logit) > 0.5``. ``obs_fn(next_obs)``, when given, post-processes the predicted
    observations before anything reads them (``known.OBS_PROJECTIONS``).
    """
    check_config(state, config)
    if reward_fn is None and not config.learn_reward:
        raise ValueError("the model has no learned reward (learn_reward=False): pass reward_fn")
    key_member, key_noise = jax.random.split(key)
    mean, logvar, logit = predict_full(state, config, obs, action)
    batch = obs.shape[0]
    member = state.elites[rng.randint(key_member, (batch,), 0, state.elites.shape[0])]
    pick = lambda x: x[member, jnp.arange(batch)]
    mean, logvar = pick(mean), pick(logvar)
    if not deterministic:
        mean = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key_noise, mean.shape)
    offset = int(config.learn_reward)
    next_obs = obs + mean[:, offset:]
    if obs_fn is not None:
        next_obs = obs_fn(next_obs)
    if reward_fn is not None:
        reward = reward_fn(obs, action, next_obs)
    else:
        reward = mean[:, 0]
    if termination_fn is not None:
        terminated = termination_fn(obs, action, next_obs).astype(bool)
    elif config.learn_termination:
        terminated = pick(logit) > 0.0
    else:
        terminated = jnp.zeros((batch,), bool)
    return next_obs, reward, terminated


def make_model_step(state: EnsembleState, config: EnsembleConfig, *,
                    deterministic: bool = False, reward_fn: RewardFn | None = None,
                    termination_fn: RewardFn | None = None, obs_fn=None):
    """``model_step(key, obs, action) -> (next_obs, reward, terminated)`` for ``rollout``."""
    return lambda key, obs, action: sample_step(
        state, config, key, obs, action, deterministic=deterministic, reward_fn=reward_fn,
        termination_fn=termination_fn, obs_fn=obs_fn)


# --- fitting ----------------------------------------------------------------------------------

def _masked_stats(x: jax.Array, weight: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and standard deviation of rows ``x [N, D]`` with 0/1 ``weight [N]``; a scale below
    1e-6 (a constant feature) becomes 1. Computed around a shifted origin for stability."""
    count = jnp.maximum(weight.sum(), 1.0)
    shift = x[jnp.argmax(weight)]  # any included row
    centred = (x - shift) * weight[:, None]
    mean_c = centred.sum(0) / count
    var = jnp.maximum((centred ** 2).sum(0) / count - mean_c ** 2, 0.0)
    std = jnp.sqrt(var)
    return mean_c + shift, jnp.where(std < 1e-6 * jnp.maximum(1.0, jnp.abs(mean_c + shift)), 1.0,
                                     std)


def layer_decays(config: EnsembleConfig) -> tuple:
    """The L2 coefficient of each layer (hidden..., output). ``weight_decay=None`` stays None in
    the config and is resolved here, from the depth, so that a config rebuilt with other
    ``hidden_sizes`` (``replace``, the command line's ``--set model.hidden_sizes=...``) gets
    the decays of its own depth."""
    num_layers = len(config.hidden_sizes) + 1
    decays = config.weight_decay
    if decays is None:
        return ((2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4) if num_layers == 5 else
                tuple(float(v) for v in np.linspace(2.5e-5, 1e-4, num_layers)))
    if not isinstance(decays, tuple | list):
        return (decays,) * num_layers
    return tuple(decays)


def _weight_decay_loss(config: EnsembleConfig, net_params) -> jax.Array:
    layers = net_params["params"]
    num_layers = len(config.hidden_sizes) + 1
    decays = layer_decays(config)
    return sum(decays[i] * 0.5 * jnp.sum(layers[f"Dense_{i}"]["kernel"] ** 2)
               for i in range(num_layers))


def _losses(state: EnsembleState, config: EnsembleConfig, params, normalizer, x, y, done):
    """Summed training loss and per-member NLL [E]: x [E, B, in] in original units,
    y [E, B, D] normalised targets, done [E, B]."""
    mean, logvar, logit = raw_outputs(state, config, params, normalizer, x)
    nll = jnp.mean(gaussian_nll(mean, logvar, y), axis=-1)  # [E]
    loss = nll
    if config.learn_termination:
        loss = loss + jnp.mean(optax.sigmoid_binary_cross_entropy(logit, done), axis=-1)
    penalty = config.logvar_penalty * (params["max_logvar"].sum(-1)
                                       - params["min_logvar"].sum(-1))
    decay = jax.vmap(lambda p: _weight_decay_loss(config, p))(params["net"])  # [E]
    return jnp.sum(loss + penalty + decay), nll


def train_step(state: EnsembleState, config: EnsembleConfig, params, opt_state,
               normalizer: Normalizer, x: jax.Array, y: jax.Array, done: jax.Array):
    """One Adam step on a minibatch per member: x ``[E, B, in]`` (original units), y
    ``[E, B, D]`` (standardised targets), done ``[E, B]``. Returns (params, opt_state, nll [E])."""
    grads, nll = jax.grad(lambda p: _losses(state, config, p, normalizer, x, y, done),
                          has_aux=True)(params)
    updates, opt_state = _optimizer(config).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, nll
