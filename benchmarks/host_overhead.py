"""What the host path costs (issue 21): the same SAC run on Pendulum-v1 with the environment
stepping inside the compiled program (gymnax) and on the host (``envs.host.GymnaxOnHost``: the
same gymnax env, called back once per step for all seeds), timed side by side in one process.

    python benchmarks/host_overhead.py [--steps 1000] [--update-steps 100] [--seeds 1,8]
                                       [--repeats 3]

Rows: G = 0 (``updates_per_step``; no learner update, so what is left is acting, storing and
the step: the path's cost on its own) over ``--steps`` trained steps, and G = 20, the issue's
setting (goal: the host path within 10% of the jitted one), over ``--update-steps``; both after
200 warm-up steps (which take the host path too) and with one evaluation episode at the end.
At G = 0 a third column runs a host env that does nothing (numpy zeros): the callback's cost
without any environment. Each variant is compiled once, then timed ``--repeats`` times
alternately; printed: median milliseconds per env step (warm-up and evaluation steps counted)
and the ratio. Numbers go to benchmarks/RESULTS.md.
"""

import argparse
import statistics
import sys
import time

import gymnasium
import gymnax
import jax
import numpy as np

from purembrl import envs
from purembrl.algos import sac
from purembrl.envs import host

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402


class DoNothing:
    """A host env with Pendulum's spaces that computes nothing: the callback's own cost."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
    max_episode_steps = 200

    def __init__(self):
        self.t = 0

    def reset(self, key):
        self.t = 0
        return np.zeros(3, np.float32)

    def step(self, action, key):
        self.t += 1
        return np.zeros(3, np.float32), 0.0, False, self.t >= self.max_episode_steps


def timed(names, seeds, updates, steps, repeats):
    """Median ms per env step of each env name's run, timed alternately."""
    trains, times = {}, {}
    for name in names:
        config = sac.Config(**{**sac.PRESETS["Pendulum-v1"], "env": name,
                               "total_steps": 200 + steps, "initial_random_steps": 200,
                               "eval_every": steps, "eval_episodes": 1,
                               "updates_per_step": updates})
        keys = jax.random.split(jax.random.key(0), seeds)
        trains[name] = (jax.jit(jax.vmap(sac.make_train(config))), keys)
        jax.block_until_ready(trains[name][0](keys))  # compile
        times[name] = []
    for _ in range(repeats):
        for name, (train, keys) in trains.items():
            start = time.perf_counter()
            jax.block_until_ready(train(keys))
            times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) / (400 + steps) * 1e3 for n, t in times.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--update-steps", type=int, default=100)
    parser.add_argument("--seeds", default="1,8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env, params = gymnax.make("Pendulum-v1")
    envs.register("Pendulum-v1-on-host", lambda: host.HostEnvironment(
        "Pendulum-v1-on-host", lambda: host.GymnaxOnHost(env, params)))
    envs.register("do-nothing-on-host", lambda: host.HostEnvironment("do-nothing-on-host",
                                                                     DoNothing))
    print(f"machine: {machine()}; SAC with the Pendulum-v1 preset (256 x 256); 200 warm-up "
          f"steps, then {args.steps} (G = 0) or {args.update_steps} (G = 20) trained steps and "
          f"one 200-step evaluation episode; median of {args.repeats}", flush=True)
    print("| seeds | G | jitted env, ms per step | host env (GymnaxOnHost), ms per step | "
          "host / jitted | host env doing nothing, ms per step |")
    print("|---|---|---|---|---|---|")
    for seeds in (int(s) for s in args.seeds.split(",")):
        for updates, steps in ((0, args.steps), (20, args.update_steps)):
            names = ["Pendulum-v1", "Pendulum-v1-on-host"] + (
                ["do-nothing-on-host"] if updates == 0 else [])
            ms = timed(names, seeds, updates, steps, args.repeats)
            jitted, on_host = ms["Pendulum-v1"], ms["Pendulum-v1-on-host"]
            nothing = f"{ms['do-nothing-on-host']:.3f}" if updates == 0 else "-"
            print(f"| {seeds} | {updates} | {jitted:.3f} | {on_host:.3f} | "
                  f"{on_host / jitted:.2f} | {nothing} |", flush=True)


if __name__ == "__main__":
    main()
