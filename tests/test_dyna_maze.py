from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import envs
from purembrl.envs.dyna_maze import MOVES


def bfs(walls, start, goal):
    """Shortest path from start to goal as (distance, list of actions), or (None, None)."""
    rows, cols = walls.shape
    parent = {tuple(start): None}
    queue = deque([tuple(start)])
    while queue:
        cell = queue.popleft()
        for action, (dr, dc) in enumerate(MOVES):
            n = (cell[0] + dr, cell[1] + dc)
            if 0 <= n[0] < rows and 0 <= n[1] < cols and not walls[n] and n not in parent:
                parent[n] = (cell, action)
                queue.append(n)
    if tuple(goal) not in parent:
        return None, None
    actions, cell = [], tuple(goal)
    while parent[cell] is not None:
        cell, action = parent[cell]
        actions.append(action)
    return len(actions), actions[::-1]


def bfs_distance(walls, start, goal):
    return bfs(walls, start, goal)[0]


def test_dyna_maze_layout_and_optimal_path():
    env, _ = envs.make("DynaMaze")
    assert (env.rows, env.cols) == (6, 9) and env.num_states == 54
    assert tuple(env.start) == (2, 0) and tuple(env.goal) == (0, 8)
    assert env.walls_before.sum() == 7
    assert bfs_distance(env.walls_before, env.start, env.goal) == 14


@pytest.mark.parametrize("name, before, after", [("BlockingMaze", 10, 16),
                                                 ("ShortcutMaze", 16, 10)])
def test_changing_mazes_path_lengths(name, before, after):
    env, _ = envs.make(name)
    assert bfs_distance(env.walls_before, env.start, env.goal) == before
    assert bfs_distance(env.walls_after, env.start, env.goal) == after


def run_actions(name, actions, params=None):
    env, default = envs.make(name)
    params = params or default
    obs, state = env.reset(jax.random.key(0), params)
    out = []
    for i, a in enumerate(actions):
        obs, state, r, term, trunc, info = env.step(jax.random.key(i), state, a, params)
        out.append((np.asarray(info["final_observation"]).tolist(), float(r), bool(term),
                    np.asarray(obs).tolist(), int(state.total_steps)))
    return out


def test_walls_and_edges_block_moves():
    up, left, right = 0, 2, 3
    steps = run_actions("DynaMaze", [left, right, right, up, up, up])
    positions = [s[0] for s in steps]
    # start (2, 0): left is off the grid; (2, 2) is a wall; then up twice, the edge stops the third
    assert positions == [[2, 0], [2, 1], [2, 1], [1, 1], [0, 1], [0, 1]]
    assert all(r == 0.0 and not t for _, r, t, _, _ in steps)


def test_goal_terminates_with_reward_and_resets():
    env, _ = envs.make("DynaMaze")
    _, path = bfs(env.walls_before, env.start, env.goal)
    steps = run_actions("DynaMaze", path)
    assert steps[-1][0] == [0, 8] and steps[-1][1] == 1.0 and steps[-1][2]
    assert steps[-1][3] == [2, 0]  # the auto-reset observation is the start again
    assert all(not t and r == 0.0 for _, r, t, _, _ in steps[:-1])


def test_blocking_maze_changes_after_total_steps_across_episodes():
    env, params = envs.make("BlockingMaze")
    params = params.replace(change_at=5, max_steps_in_episode=3)  # episodes of 3 steps
    obs, state = env.reset(jax.random.key(0), params)
    right = 3
    totals = []
    for i in range(7):
        obs, state, *_ = env.step(jax.random.key(i), state, right, params)
        totals.append(int(state.total_steps))
    assert totals == list(range(1, 8))  # kept through the auto-resets at steps 3 and 6
    w_before = np.asarray(env.walls_at(jnp.int32(4), params))
    w_after = np.asarray(env.walls_at(jnp.int32(5), params))
    assert not w_before[3, 8] and w_before[3, 0]
    assert w_after[3, 8] and not w_after[3, 0]


def test_slip_randomises_actions():
    env, params = envs.make("DynaMaze")
    params = params.replace(slip_prob=1.0)
    _, state = env.reset(jax.random.key(0), params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, None, None, None)))
    obs, *_ = step(jax.random.split(jax.random.key(1), 400), state, 3, params)
    moved = {tuple(o) for o in np.asarray(obs).tolist()}
    assert moved == {(1, 0), (3, 0), (2, 1), (2, 0)}  # up, down, right, and left (blocked)


def test_unknown_env():
    with pytest.raises(ValueError, match="unknown env 'Nope'"):
        envs.make("Nope")
