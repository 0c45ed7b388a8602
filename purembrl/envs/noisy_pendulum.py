"""Pendulum-v1 with stochastic transitions: Gaussian process noise on the angular velocity.

Deep Dyna's reason for sampling several s' per (s, a) (the notes: the Q target is an
*expectation* over s') only matters when transitions are random, and gymnax's classic tasks
are deterministic. ``NoisyPendulum`` is gymnax's Pendulum with ``theta_dot_std`` times a
standard normal draw added to each next state's angular velocity (then clipped to the usual
+-8 rad/s), so ``p(s' | s, a)`` is a Gaussian in theta_dot that a probabilistic ensemble can
represent. The reward is gymnax's, a function of (s, a) only, so it is unchanged by the noise,
and the task still never terminates (the known reward and termination of Pendulum-v1 apply).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from gymnax.environments.classic_control.pendulum import Pendulum


class NoisyPendulum(Pendulum):
    """Pendulum-v1 whose next angular velocity carries N(0, ``theta_dot_std``^2) noise."""

    def __init__(self, theta_dot_std: float = 0.3):
        super().__init__()
        if not theta_dot_std >= 0:
            raise ValueError(f"theta_dot_std={theta_dot_std!r} is invalid: allowed >= 0")
        self.theta_dot_std = float(theta_dot_std)

    def step_env(self, key, state, action, params):
        obs, next_state, reward, done, info = super().step_env(key, state, action, params)
        noise = self.theta_dot_std * jax.random.normal(jax.random.fold_in(key, 1))
        theta_dot = jnp.clip(next_state.theta_dot + noise, -params.max_speed, params.max_speed)
        next_state = next_state.replace(theta_dot=theta_dot.astype(next_state.theta_dot.dtype))
        # the parent's rule for gradients through a transition applies to the noisy one too
        obs, next_state = self._apply_transition_gradient_policy(self.get_obs(next_state),
                                                                 next_state)
        return obs, next_state, reward, done, info

    @property
    def name(self) -> str:
        return "NoisyPendulum-v1"
