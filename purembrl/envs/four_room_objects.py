"""Barreto et al.'s four-room environment with objects, for transfer with successor features.

Barreto, Dabney, Munos, Hunt, Schaul, van Hasselt & Silver 2017, "Successor features for transfer
in reinforcement learning", Section 5 ("four-room" domain): a 13 x 13 grid of four rooms holds
objects of three types and a goal. Picking up an object (stepping on it) gives the reward of its
type; the object then disappears until the episode ends. Reaching the goal gives +1 and ends the
episode. A task is the vector of object rewards ``w_objects ~ U(-1, 1)^3``; the dynamics and the
features are shared by every task:

    phi(s, a, s') = [picked type 1, picked type 2, picked type 3, reached goal]  in {0, 1}^4
    r(s, a, s')   = w . phi,  w = [w_objects, 1].

The default layout (12 objects, goal at the top right, start at the bottom left) is the one used
by the public reproductions of that experiment. Actions 0..3 move up, down, left, right; a move
into a wall or off the grid leaves the agent in place; episodes are cut at
``max_steps_in_episode`` (a truncation, not a termination).

The observation is int32 ``[row, col, collected_0, ..., collected_{K-1}]``; the state (position
and which objects are gone) is fully observed, so the tabular index ``obs_to_index`` (position x
collected-mask, ``rows * cols * 2^K`` states) makes tabular methods exact. The features of each
step are in ``info["features"]`` (``num_features`` of them): phi is known to the agent, as in
the paper's SFQL experiments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purembrl.envs.dyna_maze import MOVES

BARRETO_LAYOUT = (
    "1    2X     G",
    "      X      ",
    "      1      ",
    "             ",
    "      X      ",
    "2    3X      ",
    "XX3 XXXXX 1XX",
    "      X2    3",
    "      X      ",
    "             ",
    "      2      ",
    "      X      ",
    "_     X3    1",
)


@struct.dataclass
class EnvState(environment.EnvState):
    pos: jax.Array  # [2] int32
    collected: jax.Array  # [num_objects] bool
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    object_weights: jax.Array = struct.field(
        default_factory=lambda: jnp.array([1.0, 0.5, -1.0], jnp.float32))
    goal_reward: float = 1.0
    max_steps_in_episode: int = 200


class FourRoomObjects(environment.Environment[EnvState, EnvParams]):
    """The object-collection four-room grid (see the module docstring)."""

    def __init__(self, layout: tuple[str, ...] = BARRETO_LAYOUT, num_types: int = 3):
        super().__init__()
        rows, cols = len(layout), len(layout[0])
        if any(len(line) != cols for line in layout):
            raise ValueError("layout lines must all have the same length")
        self.rows, self.cols, self.num_types = rows, cols, num_types
        self.walls = np.array([[ch == "X" for ch in line] for line in layout])
        objects, types, start, goal = [], [], None, None
        for r, line in enumerate(layout):
            for c, ch in enumerate(line):
                if ch.isdigit():
                    if not 1 <= int(ch) <= num_types:
                        raise ValueError(f"object type {ch} at ({r}, {c}) not in 1..{num_types}")
                    objects.append((r, c))
                    types.append(int(ch) - 1)
                elif ch == "_":
                    start = (r, c)
                elif ch == "G":
                    goal = (r, c)
                elif ch not in " X":
                    raise ValueError(f"unknown layout character {ch!r}")
        if start is None or goal is None:
            raise ValueError("layout needs a start '_' and a goal 'G'")
        self.start, self.goal = np.array(start, np.int32), np.array(goal, np.int32)
        self.object_pos = np.array(objects, np.int32).reshape(-1, 2)
        self.object_type = np.array(types, np.int32)
        # cell -> object id (-1: none), for O(1) lookup under jit
        self.object_at = -np.ones((rows, cols), np.int32)
        for k, (r, c) in enumerate(objects):
            self.object_at[r, c] = k

    # -- features and the tabular interface ----------------------------------------------
    @property
    def num_objects(self) -> int:
        return len(self.object_type)

    @property
    def num_features(self) -> int:
        return self.num_types + 1

    @property
    def num_states(self) -> int:
        return self.rows * self.cols * 2 ** self.num_objects

    def obs_to_index(self, obs: jax.Array) -> jax.Array:
        """``(row * cols + col) * 2^K + sum_k collected_k 2^k`` of an observation
        ``[..., 2 + K]``."""
        bits = jnp.asarray(2 ** np.arange(self.num_objects), jnp.int32)
        mask = jnp.sum(obs[..., 2:] * bits, axis=-1)
        return (obs[..., 0] * self.cols + obs[..., 1]) * 2 ** self.num_objects + mask

    def task_weights(self, params: EnvParams) -> jax.Array:
        """``w = [object_weights, goal_reward]``, so that ``r = w . phi``."""
        return jnp.concatenate([jnp.asarray(params.object_weights, jnp.float32),
                                jnp.asarray(params.goal_reward, jnp.float32)[None]])

    def move(self, pos: jax.Array, action: jax.Array) -> jax.Array:
        target = pos + jnp.asarray(MOVES)[action]
        inside = (target >= 0).all() & (target[0] < self.rows) & (target[1] < self.cols)
        clipped = jnp.clip(target, 0, jnp.array([self.rows - 1, self.cols - 1]))
        free = inside & ~jnp.asarray(self.walls)[clipped[0], clipped[1]]
        return jnp.where(free, target, pos).astype(jnp.int32)

    # -- gymnax interface ----------------------------------------------------------------
    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        pos = self.move(state.pos, action)
        obj = jnp.asarray(self.object_at)[pos[0], pos[1]]
        safe = jnp.maximum(obj, 0)
        picked = (obj >= 0) & ~state.collected[safe]
        kind = jnp.asarray(self.object_type)[safe]
        at_goal = (pos == jnp.asarray(self.goal)).all()
        phi = jnp.concatenate([
            jax.nn.one_hot(kind, self.num_types) * picked, at_goal[None].astype(jnp.float32)])
        collected = state.collected.at[safe].set(state.collected[safe] | picked)
        new_state = EnvState(pos=pos, collected=collected, time=state.time + 1)
        reward = phi @ self.task_weights(params)
        obs = self.get_obs(new_state)
        return obs, new_state, reward, at_goal, {"discount": 1.0 - at_goal, "features": phi}

    def reset_env(self, key, params: EnvParams):
        state = EnvState(pos=jnp.asarray(self.start),
                         collected=jnp.zeros(self.num_objects, bool),
                         time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return (state.pos == jnp.asarray(self.goal)).all()

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return jnp.concatenate([state.pos, state.collected.astype(jnp.int32)])

    @property
    def name(self) -> str:
        return "FourRoomObjects"

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(0, max(self.rows, self.cols) - 1, (2 + self.num_objects,), jnp.int32)

    def state_space(self, params: EnvParams) -> spaces.Dict:
        return spaces.Dict({
            "pos": spaces.Box(0, max(self.rows, self.cols) - 1, (2,), jnp.int32),
            "collected": spaces.Box(0, 1, (self.num_objects,), jnp.bool_),
            "time": spaces.Discrete(params.max_steps_in_episode),
        })

    # -- exact model ------------------------------------------------------------------------
    def tabular_model(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact deterministic model over ``num_states`` states, for closed-form checks:
        ``(next_index [S, A] int32, phi [S, A, num_features] float32, terminal [S] bool)``.
        Indices follow ``obs_to_index``; goal states are absorbing (terminal)."""
        K, A, cells = self.num_objects, 4, self.rows * self.cols
        masks = np.arange(2 ** K, dtype=np.int64)
        next_index = np.zeros((cells, A, 2 ** K), np.int64)
        phi = np.zeros((cells, A, 2 ** K, self.num_features), np.float32)
        for r in range(self.rows):
            for c in range(self.cols):
                for a in range(A):
                    nr, nc = r + MOVES[a][0], c + MOVES[a][1]
                    if not (0 <= nr < self.rows and 0 <= nc < self.cols) or self.walls[nr, nc]:
                        nr, nc = r, c
                    obj = self.object_at[nr, nc]
                    new_masks = masks
                    if obj >= 0:
                        picked = (masks >> obj) & 1 == 0
                        new_masks = masks | (1 << obj)
                        phi[r * self.cols + c, a, picked, self.object_type[obj]] = 1.0
                    if (nr, nc) == tuple(self.goal):
                        phi[r * self.cols + c, a, :, -1] = 1.0
                    next_index[r * self.cols + c, a] = (nr * self.cols + nc) * 2 ** K + new_masks
        terminal = np.zeros((cells, 2 ** K), bool)
        terminal[self.goal[0] * self.cols + self.goal[1]] = True
        S = cells * 2 ** K
        return (next_index.transpose(0, 2, 1).reshape(S, A).astype(np.int32),
                phi.transpose(0, 2, 1, 3).reshape(S, A, self.num_features),
                terminal.reshape(S))


SMALL_LAYOUT = (
    "1 X G",
    "  2  ",
    "X X  ",
    "_ 3 1",
)
"""A 4 x 5 layout with 4 objects (320 states) for tests and quick runs."""
