"""Figure 8.2's Dyna-Q written the way textbook code does it: a plain Python/NumPy loop.

This is the baseline that benchmarks/dyna_maze.py times against purembrl's jitted Dyna-Q. It
follows the book's Tabular Dyna-Q box line by line: NumPy Q table, a dict model of the last
observed (s', r) per (s, a), planning from a random previously observed state and a random
action previously taken in it, epsilon-greedy with random tie-breaking.
"""

from __future__ import annotations

import numpy as np

ROWS, COLS = 6, 9
START, GOAL = (2, 0), (0, 8)
WALLS = {(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)}
MOVES = [(-1, 0), (1, 0), (0, -1), (0, 1)]


def maze_step(state, action):
    r, c = state[0] + MOVES[action][0], state[1] + MOVES[action][1]
    if not (0 <= r < ROWS and 0 <= c < COLS) or (r, c) in WALLS:
        r, c = state
    reward = 1.0 if (r, c) == GOAL else 0.0
    return (r, c), reward


def greedy(q_row, rng):
    best = np.flatnonzero(q_row == q_row.max())
    return int(rng.choice(best))


def dyna_q_run(planning_steps, rng, episodes=50, alpha=0.1, gamma=0.95, epsilon=0.1):
    """Steps to the goal in each of ``episodes`` episodes."""
    q = np.zeros((ROWS, COLS, 4))
    model: dict = {}
    steps_per_episode = []
    for _ in range(episodes):
        state, steps = START, 0
        while state != GOAL:
            if rng.random() < epsilon:
                action = int(rng.integers(4))
            else:
                action = greedy(q[state], rng)
            next_state, reward = maze_step(state, action)
            target = reward + gamma * q[next_state].max() * (next_state != GOAL)
            q[state][action] += alpha * (target - q[state][action])
            model.setdefault(state, {})[action] = (next_state, reward)
            observed = list(model.keys())
            for _ in range(planning_steps):
                s = observed[rng.integers(len(observed))]
                actions = list(model[s].keys())
                a = actions[rng.integers(len(actions))]
                s2, r = model[s][a]
                target = r + gamma * q[s2].max() * (s2 != GOAL)
                q[s][a] += alpha * (target - q[s][a])
            state = next_state
            steps += 1
        steps_per_episode.append(steps)
    return np.array(steps_per_episode)


def figure_8_2(runs=30, ns=(0, 5, 50), episodes=50, seed=0):
    """``{n: [runs, episodes]}`` steps per episode."""
    rng = np.random.default_rng(seed)
    return {n: np.stack([dyna_q_run(n, rng, episodes) for _ in range(runs)]) for n in ns}


if __name__ == "__main__":
    import time

    t0 = time.perf_counter()
    out = figure_8_2()
    print(f"{time.perf_counter() - t0:.1f} s")
    for n, steps in out.items():
        print(n, steps.mean(0)[:10].round(1), steps.mean(0)[-1])
