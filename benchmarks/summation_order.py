"""Does a last-bit change of the observation statistics change what a run learns? Same keys,
before and after each of two changes made so that the golden cases are the same on every CPU.

    python benchmarks/summation_order.py [--change sum|sqrt] [--algos sac,dqn] [--seeds 8]
        [--steps sac=10000,...]

``normalize_obs=True`` keeps running means and variances of the observations the learner
trains on (``learners.normalize_observations``). Their minibatch sums used XLA's reduction,
whose order follows the host CPU (an Intel Xeon and an AMD EPYC differ in the last bit);
they now use one fixed pairwise order (``--change sum``). The normalised inputs divided by
``sqrt(var + eps)``, which XLA rewrote into a multiplication by ``rsqrt``, computed on the CPU
from the hardware's approximate reciprocal square root, whose bits differ between Intel and
AMD; they now divide by an exact square root (``--change sqrt``). Each change moves a few
golden numbers in the last bits. This script runs each algorithm's preset
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


def rsqrt_normalized(state, obs, clip=10.0, eps=1e-8):
    """The normalised inputs as computed before: XLA turns the division into ``rsqrt``."""
    var = jnp.where(state.count > 0, state.m2 / jnp.maximum(state.count, 1.0), 1.0)
    return jnp.clip((obs - state.mean) / jnp.sqrt(var + eps), -clip, clip)


CHANGES = {  # name: (module attribute, before, label before, label after)
    "sum": ("pairwise_sum", xla_sum, "XLA sum", "pairwise"),
    "sqrt": ("normalized", rsqrt_normalized, "rsqrt", "exact sqrt"),
}


def permutation_p(a: np.ndarray, b: np.ndarray, rounds: int = 20_000) -> float:
    """Two-sided p of the difference of the means of ``a`` and ``b`` under relabelling."""
    rng = np.random.default_rng(0)
    both, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
    hits = 0
    for _ in range(rounds):
        rng.shuffle(both)
        hits += abs(both[:len(a)].mean() - both[len(a):].mean()) >= observed - 1e-12
    return (hits + 1) / (rounds + 1)


def run(algo_name: str, steps: int | None, seeds: int, attribute: str,
        function) -> tuple[np.ndarray, float]:
    """``eval_return [seeds, evaluations]`` and the seconds taken, with ``normalize``'s
    ``attribute`` set to ``function``."""
    setattr(normalize, attribute, function)  # the learner looks it up when traced
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
    parser.add_argument("--change", choices=sorted(CHANGES), default="sum")
    parser.add_argument("--algos", default="sac,dqn")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", default="", help="ALGO=TOTAL_STEPS,... (default: preset)")
    args = parser.parse_args()
    budgets = {k: int(v) for k, v in (item.split("=") for item in args.steps.split(",") if item)}
    print(f"machine: {machine()}")
    attribute, before, label_old, label_new = CHANGES[args.change]
    after = getattr(normalize, attribute)
    print(f"| algorithm (env, steps) | final return: {label_old} | {label_new} | p | mean over "
          f"evaluations: {label_old} | {label_new} | p | seeds bit-identical |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.algos.split(","):
        old, t_old = run(name, budgets.get(name), args.seeds, attribute, before)
        new, t_new = run(name, budgets.get(name), args.seeds, attribute, after)
        cells = []
        for a, b in ((old[:, -1], new[:, -1]), (old.mean(1), new.mean(1))):
            cells += [f"{a.mean():.1f} [{np.median(a):.1f}]", f"{b.mean():.1f} "
                      f"[{np.median(b):.1f}]", f"{permutation_p(a, b):.2f}"]
        same = sum(np.array_equal(o, n) for o, n in zip(old, new, strict=True))
        budget = budgets.get(name) or algos.get(name).Config.for_env(env=ENVS[name]).total_steps
        print(f"| {name} ({ENVS[name]}, {budget}) | {' | '.join(cells)} | {same} of "
              f"{args.seeds} |", flush=True)
        print(f"    seconds: {t_old:.0f} ({label_old}), {t_new:.0f} ({label_new}); per-seed "
              f"final returns {label_old} {np.round(old[:, -1], 1).tolist()}, {label_new} "
              f"{np.round(new[:, -1], 1).tolist()}", flush=True)


if __name__ == "__main__":
    main()
