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


def expected_reward(P: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``r[s, a] = sum_s' P[s, a, s'] R[s, a, s']``."""
    return np.einsum("sat,sat->sa", P, R)


def policy_evaluation(P: np.ndarray, r: np.ndarray, pi: np.ndarray, gamma: float,
                      terminal: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(V [S], Q [S, A])`` of a stochastic policy ``pi [S, A]`` by a linear solve.

    ``r [S, A]`` is the expected reward of a step; ``terminal [S]`` states have value 0 (the
    episode ends on entering them).
    """
    S, A = r.shape
    cont = np.ones(S) if terminal is None else 1.0 - terminal.astype(float)
    P_cont = P * cont[None, None, :]
    P_pi = np.einsum("sa,sat->st", pi, P_cont)
    v = np.linalg.solve(np.eye(S) - gamma * P_pi, np.einsum("sa,sa->s", pi, r))
    q = r + gamma * np.einsum("sat,t->sa", P_cont, v)
    return v, q


def random_mdp(rng: np.random.Generator, num_states: int, num_actions: int,
               branching: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A random MDP for closed-form checks: ``(P [S, A, S], r [S, A])``.

    Each (s, a) moves to ``branching`` successor states (all states if None) with Dirichlet(1)
    probabilities; rewards are standard normal.
    """
    P = np.zeros((num_states, num_actions, num_states))
    k = num_states if branching is None else branching
    for s in range(num_states):
        for a in range(num_actions):
            succ = rng.choice(num_states, size=k, replace=False)
            P[s, a, succ] = rng.dirichlet(np.ones(k))
    return P, rng.standard_normal((num_states, num_actions))


def four_rooms_mdp(env=None, params=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P [169, 4, 169], R [169, 4, 169], terminal [169])`` of gymnax's ``FourRooms-misc``.

    States are ``row * 13 + col`` (wall cells are unreachable self-loops). With probability
    ``fail_prob * 4 / 3`` gymnax replaces the action by a uniformly random one, so the intended
    move happens with probability 1 - fail_prob (2/3 by default) and each other move with
    fail_prob / 3. Reward 1 on entering the goal, which is terminal. Fixed goal and start only
    (``resample_goal_pos`` would make the goal part of the state).
    """
    import gymnax

    if env is None:
        env, default = gymnax.make("FourRooms-misc")
        params = default if params is None else params
    free = np.asarray(env.env_map, bool)
    directions = np.asarray(env.directions)
    goal = tuple(int(x) for x in np.asarray(env.goal_fixed))
    rows, cols = free.shape
    S, A = rows * cols, len(directions)
    moved = np.zeros((S, A, S))
    for r in range(rows):
        for c in range(cols):
            for a, (dr, dc) in enumerate(directions):
                nr, nc = r + dr, c + dc
                inside = 0 <= nr < rows and 0 <= nc < cols and free[nr, nc]
                moved[r * cols + c, a, nr * cols + nc if inside else r * cols + c] = 1.0
    random_prob = float(params.fail_prob) * 4.0 / 3.0
    P = (1.0 - random_prob) * moved + random_prob * moved.mean(axis=1, keepdims=True)
    g = goal[0] * cols + goal[1]
    R = np.zeros_like(P)
    R[:, :, g] = 1.0
    terminal = np.zeros(S, bool)
    terminal[g] = True
    return P, R, terminal
