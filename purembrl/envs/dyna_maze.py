"""Sutton & Barto's grid mazes for Dyna (Reinforcement Learning: An Introduction, 2nd ed., Ch. 8).

* ``DynaMaze``: Example 8.1 / Figure 8.2, a 6 x 9 grid, start S at row 2 col 0, goal G at row 0
  col 8 (rows counted from the top), with seven wall cells; the shortest path takes 14 steps.
* ``BlockingMaze``: Figure 8.4. A wall across row 3 leaves a gap at the right; after
  ``change_at`` (1000) total steps the gap moves to the left, so the known path is blocked.
* ``ShortcutMaze``: Figure 8.5. The wall leaves a gap at the left; after ``change_at`` (3000)
  total steps a second gap opens at the right, a shortcut the agent must discover.

Actions 0..3 are up, down, left, right; a move into a wall or off the grid leaves the agent in
place. Reward is 1 on reaching the goal (which terminates the episode) and 0 otherwise. With
``slip_prob > 0`` the action is replaced by a uniformly random one with that probability (a
stochastic variant for the expected-update experiments). The observation is ``[row, col]`` as
int32; ``obs_to_index`` maps it to a state index in ``[0, rows * cols)``.

The changing mazes count steps across episodes: the env state carries ``total_steps`` through
gymnax's auto-reset (``step`` is overridden for that), so the wall moves after the same number of
real steps as in the book, whatever the episode boundaries.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purembrl import rng

# Moves for actions up, down, left, right as (d_row, d_col).
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], np.int32)


@struct.dataclass
class EnvState(environment.EnvState):
    pos: jax.Array  # [2] int32, (row, col)
    time: int  # steps in this episode
    total_steps: int  # steps since the first reset, carried across episodes


@struct.dataclass
class EnvParams(environment.EnvParams):
    slip_prob: float = 0.0
    change_at: int = -1  # total step at which the walls change; -1: never
    max_steps_in_episode: int = 100_000


def _walls(rows: int, cols: int, cells: list[tuple[int, int]]) -> np.ndarray:
    walls = np.zeros((rows, cols), bool)
    for r, c in cells:
        walls[r, c] = True
    return walls


class GridMaze(environment.Environment[EnvState, EnvParams]):
    """A deterministic (or slippery) grid maze whose walls may change once, at ``change_at``."""

    def __init__(self, name: str, rows: int, cols: int, start: tuple[int, int],
                 goal: tuple[int, int], walls: np.ndarray, walls_after: np.ndarray | None = None,
                 change_at: int = -1):
        super().__init__()
        self._name = name
        self.rows, self.cols = rows, cols
        self.start = np.array(start, np.int32)
        self.goal = np.array(goal, np.int32)
        self.walls_before = np.asarray(walls, bool)
        self.walls_after = np.asarray(walls if walls_after is None else walls_after, bool)
        self._change_at = change_at
        for w in (self.walls_before, self.walls_after):
            if w.shape != (rows, cols) or w[start] or w[goal]:
                raise ValueError(f"{name}: walls must be [{rows}, {cols}] and leave start and "
                                 "goal free")

    # -- tabular interface -------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return self.rows * self.cols

    def obs_to_index(self, obs: jax.Array) -> jax.Array:
        """State index ``row * cols + col`` of an observation ``[..., 2]``."""
        return obs[..., 0] * self.cols + obs[..., 1]

    def walls_at(self, total_steps: jax.Array, params: EnvParams) -> jax.Array:
        """The wall map in force after ``total_steps`` real steps, ``[rows, cols]`` bool."""
        changed = (params.change_at >= 0) & (total_steps >= params.change_at)
        return jnp.where(changed, self.walls_after, self.walls_before)

    # -- gymnax interface ----------------------------------------------------------------
    @property
    def default_params(self) -> EnvParams:
        return EnvParams(change_at=self._change_at)

    def step_env(self, key: jax.Array, state: EnvState, action: jax.Array,
                 params: EnvParams) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict]:
        key_slip, key_action = jax.random.split(key)
        slip = jax.random.uniform(key_slip) < params.slip_prob
        action = jnp.where(slip, rng.randint(key_action, (), 0, 4), action)
        walls = self.walls_at(state.total_steps, params)
        target = state.pos + jnp.asarray(MOVES)[action]
        inside = (target >= 0).all() & (target[0] < self.rows) & (target[1] < self.cols)
        clipped = jnp.clip(target, 0, jnp.array([self.rows - 1, self.cols - 1]))
        free = inside & ~walls[clipped[0], clipped[1]]
        pos = jnp.where(free, target, state.pos).astype(jnp.int32)
        at_goal = (pos == jnp.asarray(self.goal)).all()
        new_state = EnvState(pos=pos, time=state.time + 1, total_steps=state.total_steps + 1)
        reward = at_goal.astype(jnp.float32)
        return pos, new_state, reward, at_goal, {"discount": 1.0 - reward}

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        pos = jnp.asarray(self.start)
        zero = jnp.zeros((), jnp.int32)
        return pos, EnvState(pos=pos, time=zero, total_steps=zero)

    def step(self, key: jax.Array, state: EnvState, action: Any, params: EnvParams | None = None):
        """gymnax's step (auto-reset included) with ``total_steps`` kept across the reset."""
        obs, new_state, reward, terminated, truncated, info = super().step(
            key, state, action, params)
        new_state = new_state.replace(total_steps=state.total_steps + 1)
        return obs, new_state, reward, terminated, truncated, info

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return (state.pos == jnp.asarray(self.goal)).all()

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return state.pos

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(0, max(self.rows, self.cols) - 1, (2,), jnp.int32)

    def state_space(self, params: EnvParams) -> spaces.Dict:
        return spaces.Dict({
            "pos": spaces.Box(0, max(self.rows, self.cols) - 1, (2,), jnp.int32),
            "time": spaces.Discrete(params.max_steps_in_episode),
            "total_steps": spaces.Discrete(np.iinfo(np.int32).max),
        })


def DynaMaze() -> GridMaze:
    """Example 8.1: the maze of Figure 8.2 (shortest path 14 steps)."""
    walls = _walls(6, 9, [(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)])
    return GridMaze("DynaMaze", 6, 9, start=(2, 0), goal=(0, 8), walls=walls)


def BlockingMaze(change_at: int = 1000) -> GridMaze:
    """Figure 8.4: the gap in row 3 moves from the right end to the left end at ``change_at``."""
    before = _walls(6, 9, [(3, c) for c in range(0, 8)])
    after = _walls(6, 9, [(3, c) for c in range(1, 9)])
    return GridMaze("BlockingMaze", 6, 9, start=(5, 3), goal=(0, 8), walls=before,
                    walls_after=after, change_at=change_at)


def ShortcutMaze(change_at: int = 3000) -> GridMaze:
    """Figure 8.5: a second gap opens at the right end of row 3 at ``change_at``."""
    before = _walls(6, 9, [(3, c) for c in range(1, 9)])
    after = _walls(6, 9, [(3, c) for c in range(1, 8)])
    return GridMaze("ShortcutMaze", 6, 9, start=(5, 3), goal=(0, 8), walls=before,
                    walls_after=after, change_at=change_at)
