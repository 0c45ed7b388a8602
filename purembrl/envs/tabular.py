"""Exact tabular models of the library's grid mazes, and value iteration over them.

``maze_mdp`` gives the transition tensor ``P[s, a, s']``, the reward ``R[s, a, s']`` and the
terminal flags of a ``GridMaze`` (slip included), so learned tabular quantities can be checked
against closed forms. Goal and wall cells keep rows of their own (self-loops) so that indices
match ``env.obs_to_index``.
"""

from __future__ import annotations

import numpy as np

from purembrl.envs.dyna_maze import MOVES, GridMaze


def maze_mdp(env: GridMaze, slip_prob: float = 0.0, walls: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P [S, A, S], R [S, A, S], terminal [S])`` of a grid maze (walls before any change)."""
    walls = env.walls_before if walls is None else walls
    rows, cols = env.rows, env.cols
    num_states, num_actions = rows * cols, len(MOVES)
    goal = int(env.goal[0] * cols + env.goal[1])

    def move(r, c, a):
        nr, nc = r + MOVES[a][0], c + MOVES[a][1]
        if 0 <= nr < rows and 0 <= nc < cols and not walls[nr, nc]:
            return nr * cols + nc
        return r * cols + c

    deterministic = np.zeros((num_states, num_actions, num_states))
    for r in range(rows):
        for c in range(cols):
            for a in range(num_actions):
                deterministic[r * cols + c, a, move(r, c, a)] = 1.0
    slipped = deterministic.mean(axis=1, keepdims=True)
    P = (1 - slip_prob) * deterministic + slip_prob * slipped
    R = np.zeros_like(P)
    R[:, :, goal] = 1.0
    terminal = np.zeros(num_states, bool)
    terminal[goal] = True
    return P, R, terminal


def q_value_iteration(P: np.ndarray, R: np.ndarray, terminal: np.ndarray, gamma: float,
                      tol: float = 1e-12, max_iters: int = 100_000) -> np.ndarray:
    """Optimal action values Q*[s, a] = sum_s' P (R + gamma (1 - terminal(s')) max Q*(s'))."""
    q = np.zeros(P.shape[:2])
    for _ in range(max_iters):
        v = np.where(terminal, 0.0, q.max(axis=1))
        new = np.einsum("sat,sat->sa", P, R + gamma * v[None, None, :])
        if np.abs(new - q).max() < tol:
            return new
        q = new
    raise RuntimeError("value iteration did not converge")
