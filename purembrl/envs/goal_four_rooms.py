"""Goal-conditioned FourRooms: gymnax's ``FourRooms-misc`` with a goal drawn per episode.

The dynamics are gymnax's (Sutton, Precup & Singh 1999; the intended move happens with
probability 2/3, see ``envs.tabular.four_rooms_mdp``): this wrapper calls the gymnax
environment's own ``step_env`` and only changes what an episode is. Each reset draws a start and
a different goal uniformly from the free cells; reaching the goal gives reward 1 and
``info["success"]`` but does not end the episode (fixed-length episodes, as goal-conditioned
learners expect). The observation is ``[row, col, goal_row, goal_col]`` (float32), with the same
helpers as the point maze: ``achieved_goal``, ``desired_goal``, ``with_goal``.
"""

from __future__ import annotations

import gymnax
import jax
import jax.numpy as jnp
from gymnax.environments import environment, spaces
from gymnax.environments.misc.rooms import EnvParams, EnvState

from purembrl import rng
from purembrl.envs.point_maze import GoalObservation


class GoalFourRooms(GoalObservation, environment.Environment[EnvState, EnvParams]):
    """FourRooms-misc with per-episode goals and no termination (discrete actions)."""

    def __init__(self):
        super().__init__()
        self.inner, _ = gymnax.make("FourRooms-misc")
        self.coords = self.inner.coords  # free cells [F, 2]

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=50)

    def goal_reached(self, achieved: jax.Array, goal: jax.Array, params=None) -> jax.Array:
        """Success of achieved cells ``[..., 2]`` for goal cells ``[..., 2]``."""
        return (achieved == goal).all(axis=-1)

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        _, moved, *_ = self.inner.step_env(key, state, action, params)
        success = self.goal_reached(moved.pos, state.goal)
        distance = jnp.linalg.norm((moved.pos - state.goal).astype(jnp.float32))
        new_state = moved.replace(goal=state.goal)
        info = {"success": success, "distance": distance, "discount": jnp.ones(())}
        return (self.get_obs(new_state), new_state, success.astype(jnp.float32),
                jnp.zeros((), bool), info)

    def reset_env(self, key, params: EnvParams):
        key_start, key_goal = jax.random.split(key)
        n = self.coords.shape[0]
        start = rng.randint(key_start, (), 0, n)
        # a goal different from the start: shift by 1..n-1 places
        goal = (start + rng.randint(key_goal, (), 1, n)) % n
        state = EnvState(pos=self.coords[start], goal=self.coords[goal],
                         time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return jnp.concatenate([state.pos, state.goal]).astype(jnp.float32)

    @property
    def name(self) -> str:
        return "FourRooms-goal"

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(0.0, 12.0, (4,), jnp.float32)

    def state_space(self, params: EnvParams) -> spaces.Dict:
        return self.inner.state_space(params)
