"""Networks: MLPs (flax.linen) and ensembles of them as one set of stacked parameters.

An ensemble of E members is one parameter pytree whose leaves carry a leading ``[E]`` axis,
initialised and applied with ``jax.vmap``; every layer becomes one batched matmul over the
members, which is what makes a 7-member model cost about as much as one wide network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "swish": nn.swish,
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
}


class MLP(nn.Module):
    """Dense layers of ``hidden_sizes`` with ``activation``, then a linear layer of ``out_size``.

    Layers are named ``Dense_0 .. Dense_L`` (L = number of hidden layers), the last one linear,
    so per-layer settings (weight decay) can be indexed by position.
    """

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "swish"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = act(nn.Dense(size)(x))
        return nn.Dense(self.out_size)(x)


def ensemble_init(module: nn.Module, key: jax.Array, num_members: int, in_size: int):
    """Parameters of ``num_members`` independently initialised copies, stacked on axis 0."""
    keys = jax.random.split(key, num_members)
    return jax.vmap(lambda k: module.init(k, jnp.zeros((1, in_size))))(keys)


def ensemble_apply(module: nn.Module, params, x: jax.Array) -> jax.Array:
    """Apply each member to its own inputs: ``x [E, batch, in] -> [E, batch, out]``."""
    return jax.vmap(module.apply)(params, x)


class GaussianActor(nn.Module):
    """Mean and log standard deviation of a diagonal Gaussian over pre-squash actions.

    The log-std is squashed into [log_std_min, log_std_max] with a tanh (smooth, no clipping
    dead zone), as in many SAC implementations.
    """

    hidden_sizes: Sequence[int]
    action_dim: int
    activation: str = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden_sizes, 2 * self.action_dim, self.activation)(obs)
        mean, raw = jnp.split(out, 2, axis=-1)
        unit = 0.5 * (jnp.tanh(raw) + 1.0)
        return mean, self.log_std_min + unit * (self.log_std_max - self.log_std_min)


class SuccessorHead(nn.Module):
    """Successor features psi(s, .) for every action: ``[..., num_actions, num_features]``.

    With ``num_states > 0`` the input is a tabular state index and the first layer an embedding
    (a linear layer on the one-hot state, without building it); with no hidden layers that is a
    table, initialised to zero like tabular TD. Otherwise the input is an observation vector and
    the network an MLP. (Barreto et al. 2017's SFDQN uses one psi head of N outputs per action.)
    """

    num_actions: int
    num_features: int
    hidden_sizes: Sequence[int] = ()
    num_states: int = 0
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out = self.num_actions * self.num_features
        hidden = tuple(self.hidden_sizes)
        if self.num_states:
            if not hidden:
                y = nn.Embed(self.num_states, out, embedding_init=nn.initializers.zeros)(x)
                return y.reshape(*y.shape[:-1], self.num_actions, self.num_features)
            x = ACTIVATIONS[self.activation](nn.Embed(self.num_states, hidden[0])(x))
            hidden = hidden[1:]
        y = MLP(hidden, out, self.activation)(x)
        return y.reshape(*y.shape[:-1], self.num_actions, self.num_features)
