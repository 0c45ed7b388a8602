"""A 2-D point mass in walled mazes, goal-conditioned, for C-learning and contrastive RL.

The maze is a grid of unit cells (``#`` wall, ``.`` free, ``S`` start cell); the agent is a point
at continuous coordinates ``(x, y)`` (x along columns, y along rows, cell (r, c) covers
``[c, c + 1) x [r, r + 1)``). An action ``a in [-1, 1]^2`` moves it by ``step_size * a``,
axis by axis: the x move is undone if it lands in a wall (or off the grid), then the same for y,
so the agent slides along walls (per-axis collision). With ``step_size < 1`` it cannot cross a
wall cell.

Each episode draws a goal uniformly from the free area (and, unless ``fixed_start``, a start
uniformly from it too; otherwise the middle of the ``S`` cell plus a little noise). The
observation is ``[x, y, goal_x, goal_y]`` (``achieved_goal(obs)`` is its first two entries, the
goal its last two). Reward 1 and ``info["success"]`` when within ``success_radius`` of the goal;
episodes have a fixed length (``max_steps_in_episode``) and never terminate, the usual setting
for goal-conditioned learning (Eysenbach et al. 2021 evaluate success and final distance).

Layouts: ``OPEN`` (a 5 x 5 room), ``U_MAZE`` (the U of D4RL's umaze) and ``FOUR_ROOMS``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

OPEN = (
    "#######",
    "#S....#",
    "#.....#",
    "#.....#",
    "#.....#",
    "#.....#",
    "#######",
)
U_MAZE = (
    "#####",
    "#S..#",
    "###.#",
    "#...#",
    "#####",
)
FOUR_ROOMS = (
    "###########",
    "#S...#....#",
    "#....#....#",
    "#.........#",
    "#....#....#",
    "##.####.###",
    "#....#....#",
    "#....#....#",
    "#.........#",
    "#....#....#",
    "###########",
)
LAYOUTS = {"Open": OPEN, "UMaze": U_MAZE, "FourRooms": FOUR_ROOMS}


class GoalObservation:
    """Observations ``[position (2), goal (2)]`` of the goal-conditioned environments."""

    @staticmethod
    def achieved_goal(obs: jax.Array) -> jax.Array:
        return obs[..., :2]

    @staticmethod
    def desired_goal(obs: jax.Array) -> jax.Array:
        return obs[..., 2:]

    @staticmethod
    def with_goal(obs: jax.Array, goal: jax.Array) -> jax.Array:
        """The observation with its goal replaced (hindsight relabelling)."""
        return jnp.concatenate([obs[..., :2], goal], axis=-1)


@struct.dataclass
class EnvState(environment.EnvState):
    pos: jax.Array  # [2] float32 (x, y)
    goal: jax.Array  # [2] float32
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    step_size: float = 0.25
    success_radius: float = 0.5
    fixed_start: bool = True
    max_steps_in_episode: int = 50


class PointMaze(GoalObservation, environment.Environment[EnvState, EnvParams]):
    """Goal-conditioned point mass in a grid maze (see the module docstring)."""

    def __init__(self, layout: str | tuple[str, ...] = "UMaze"):
        super().__init__()
        rows = LAYOUTS[layout] if isinstance(layout, str) else layout
        self._name = f"PointMaze-{layout}" if isinstance(layout, str) else "PointMaze"
        if len({len(r) for r in rows}) != 1:
            raise ValueError("layout rows must all have the same length")
        self.walls = np.array([[ch == "#" for ch in r] for r in rows])
        starts = [(i, j) for i, r in enumerate(rows) for j, ch in enumerate(r) if ch == "S"]
        if len(starts) != 1:
            raise ValueError("layout needs exactly one start cell 'S'")
        self.start_cell = np.array(starts[0], np.int32)
        self.free_cells = np.argwhere(~self.walls).astype(np.int32)  # [F, 2] (row, col)
        self.height, self.width = self.walls.shape

    # -- geometry ------------------------------------------------------------------------
    def is_free(self, xy: jax.Array) -> jax.Array:
        """Whether a point ``[..., 2]`` (x, y) lies in a free cell of the grid."""
        col, row = jnp.floor(xy[..., 0]).astype(jnp.int32), jnp.floor(xy[..., 1]).astype(
            jnp.int32)
        inside = (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        safe_r = jnp.clip(row, 0, self.height - 1)
        safe_c = jnp.clip(col, 0, self.width - 1)
        return inside & ~jnp.asarray(self.walls)[safe_r, safe_c]

    def move(self, pos: jax.Array, action: jax.Array, params: EnvParams) -> jax.Array:
        delta = params.step_size * jnp.clip(action, -1.0, 1.0)
        moved_x = pos.at[0].add(delta[0])
        pos = jnp.where(self.is_free(moved_x), moved_x, pos)
        moved_y = pos.at[1].add(delta[1])
        return jnp.where(self.is_free(moved_y), moved_y, pos)

    def sample_free(self, key: jax.Array) -> jax.Array:
        """A point uniformly distributed over the free area."""
        key_cell, key_offset = jax.random.split(key)
        cell = jax.random.choice(key_cell, jnp.asarray(self.free_cells))
        offset = jax.random.uniform(key_offset, (2,), minval=0.05, maxval=0.95)
        return jnp.array([cell[1], cell[0]], jnp.float32) + offset

    def goal_reached(self, achieved: jax.Array, goal: jax.Array, params: EnvParams) -> jax.Array:
        """Success of achieved positions ``[..., 2]`` for goals ``[..., 2]`` (hindsight reward)."""
        return jnp.linalg.norm(achieved - goal, axis=-1) <= params.success_radius

    # -- gymnax interface ----------------------------------------------------------------
    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        pos = self.move(state.pos, action, params)
        distance = jnp.linalg.norm(pos - state.goal)
        success = self.goal_reached(pos, state.goal, params)
        new_state = EnvState(pos=pos, goal=state.goal, time=state.time + 1)
        info = {"success": success, "distance": distance, "discount": jnp.ones(())}
        return (self.get_obs(new_state), new_state, success.astype(jnp.float32),
                jnp.zeros((), bool), info)

    def reset_env(self, key, params: EnvParams):
        key_start, key_noise, key_goal = jax.random.split(key, 3)
        centre = jnp.array([self.start_cell[1], self.start_cell[0]], jnp.float32) + 0.5
        noisy = centre + jax.random.uniform(key_noise, (2,), minval=-0.1, maxval=0.1)
        pos = jnp.where(params.fixed_start, noisy, self.sample_free(key_start))
        state = EnvState(pos=pos, goal=self.sample_free(key_goal), time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return jnp.concatenate([state.pos, state.goal])

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        high = float(max(self.height, self.width))
        return spaces.Box(0.0, high, (4,), jnp.float32)

    def state_space(self, params: EnvParams) -> spaces.Dict:
        high = float(max(self.height, self.width))
        return spaces.Dict({
            "pos": spaces.Box(0.0, high, (2,), jnp.float32),
            "goal": spaces.Box(0.0, high, (2,), jnp.float32),
            "time": spaces.Discrete(params.max_steps_in_episode),
        })
