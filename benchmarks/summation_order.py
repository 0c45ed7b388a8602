"""Does the order of a float sum change what a run learns? The running observation statistics
summed by XLA's column reduction against ``learners.normalize.pairwise_sum``, same keys.

    python benchmarks/summation_order.py [--algos sac,dqn] [--seeds 8] [--steps sac=10000,...]

``normalize_obs=True`` keeps running means and variances of the observations the learner
trains on (``learners.normalize_observations``). Their minibatch sums used XLA's reduction,
whose order follows the host CPU (an Intel Xeon and an AMD EPYC differ in the last bit);
they now use one fixed pairwise order, so that the golden cases are the same on every CPU. The
change moves a few golden numbers in the last bits. This script runs each algorithm's preset
(``Config.for_env(env, normalize_obs=True)``, budget by ``--steps``) for ``--seeds`` seeds
under one ``jit(vmap)`` with each summation, on the same keys, and prints per method the mean
[median] over seeds of the final evaluation return and of the mean return over evaluations,
with a two-sided permutation test on the difference of the means (20,000 permutations).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

from purembrl import algos  # noqa: E402
from purembrl.learners import normalize  # noqa: E402

ENVS = {"sac": "Pendulum-v1", "dqn": "CartPole-v1", "mbve": "Pendulum-v1"}


def xla_sum(x: jax.Array) -> jax.Array:
    """The sum over the leading axis by XLA's reduction (what the statistics used before)."""
    return jnp.sum(x, axis=0)


def permutation_p(a: np.ndarray, b: np.ndarray, rounds: int = 20_000) -> float:
    """Two-sided p of the difference of the means of ``a`` and ``b`` under relabelling."""
    rng = np.random.default_rng(0)
    both, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
    hits = 0
    for _ in range(rounds):
        rng.shuffle(both)
        hits += abs(both[:len(a)].mean() - both[len(a):].mean()) >= observed - 1e-12
    return (hits + 1) / (rounds + 1)


def run(algo_name: str, steps: int | None, seeds: int, summation) -> tuple[np.ndarray, float]:
    """``eval_return [seeds, evaluations]`` and the seconds taken, with ``summation``."""
    normalize.pairwise_sum = summation  # observation_stats_update looks it up per trace
    algo = algos.get(algo_name)
    fields = {"normalize_obs": True}
    if steps is not None:
        fields["total_steps"] = steps
    config = algo.Config.for_env(env=ENVS[algo_name], **fields)
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    _, metrics = jax.jit(jax.vmap(algo.make_train(config)))(keys)
    returns = np.asarray(metrics["eval_return"])
    return returns, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="sac,dqn")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", default="", help="ALGO=TOTAL_STEPS,... (default: preset)")
    args = parser.parse_args()
    budgets = {k: int(v) for k, v in (item.split("=") for item in args.steps.split(",") if item)}
    print(f"machine: {machine()}")
    pairwise = normalize.pairwise_sum
    print("| algorithm (env, steps) | final return: XLA sum | pairwise | p | mean over "
          "evaluations: XLA sum | pairwise | p | seeds bit-identical |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.algos.split(","):
        old, t_old = run(name, budgets.get(name), args.seeds, xla_sum)
        new, t_new = run(name, budgets.get(name), args.seeds, pairwise)
        cells = []
        for a, b in ((old[:, -1], new[:, -1]), (old.mean(1), new.mean(1))):
            cells += [f"{a.mean():.1f} [{np.median(a):.1f}]", f"{b.mean():.1f} "
                      f"[{np.median(b):.1f}]", f"{permutation_p(a, b):.2f}"]
        same = sum(np.array_equal(o, n) for o, n in zip(old, new, strict=True))
        budget = budgets.get(name) or algos.get(name).Config.for_env(env=ENVS[name]).total_steps
        print(f"| {name} ({ENVS[name]}, {budget}) | {' | '.join(cells)} | {same} of "
              f"{args.seeds} |", flush=True)
        print(f"    seconds: {t_old:.0f} (XLA sum), {t_new:.0f} (pairwise); per-seed final "
              f"returns XLA {np.round(old[:, -1], 1).tolist()}, pairwise "
              f"{np.round(new[:, -1], 1).tolist()}", flush=True)


if __name__ == "__main__":
    main()
