"""Deep Dyna's expectation, measured: K = 5 sampled s' per (s, a) against K = 1 on a task whose
transitions are truly random (issue 20).

    python benchmarks/dyna_expectation.py [--seeds 8] [--seed 0] [--steps 2000] [--ks 1,5]
        [--updates-per-step 10] [--batch-size 256] [--threshold -200]

The notes' deep Dyna regresses Q(s, a) on the mean over K model samples of
``r + g V(s')`` (``value.expected_target``), an estimate of the expectation over s' whose
variance falls as 1/K when the model's draws are independent. On a deterministic task there is
nothing to average, so this runs on ``NoisyPendulum-v1`` (Pendulum with N(0, 0.3^2) noise on
each next angular velocity, ``envs.NoisyPendulum``), where the learned Gaussian ensemble has
real noise to represent. Each K trains ``dyna.Config.for_env("NoisyPendulum-v1")`` (Pendulum's
preset: SAC 128 x 128, G updates per step of B (s, a) pairs each) for ``--seeds`` seeds under
one ``jit(vmap)``, the same G and B for every K, so the runs differ only in how many s' each
target averages (K = 5 costs about 5 target computations per pair).

Printed per K: median [IQR] evaluation return at budgets, env steps to first reach the
threshold per seed, the final median, and the seconds. Then the targets' variance: on each
trained run, for 256 real (s, a) from its replay buffer, the target is drawn 64 times (new s'
from the model, new a' from the policy each time) with K = 1 and with K = 5, through the run's
learned ensemble and through the task's true stochastic dynamics. The variance over the 64
draws, averaged over the pairs and then medianed over seeds, is what each update's regression
target carries as noise.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import at_budget, machine, steps_shown, steps_to  # noqa: E402

from purembrl import buffer, dynamics, envs, interact  # noqa: E402
from purembrl.algos import dyna  # noqa: E402
from purembrl.envs import known  # noqa: E402
from purembrl.learners import sac  # noqa: E402

ENV = "NoisyPendulum-v1"
BUDGETS = (500, 1000, 1500, 2000, 3000)


def target_variance(config: dyna.Config, state, key: jax.Array, num_samples: int,
                    true_dynamics: bool, pairs: int = 256, repeats: int = 64) -> jax.Array:
    """Mean over ``pairs`` real (s, a) of the variance, over ``repeats`` draws, of the SAC
    critic's target with ``num_samples`` s' each (from the run's model or the true dynamics)."""
    env, env_params = envs.make(config.env)
    spec = interact.spec(env, env_params)
    nets = sac.sac_nets(config.learner, spec.action_low, spec.action_high)
    model_config, reward_fn, termination_fn = known.model_functions(config)
    if true_dynamics:
        model_step = known.true_model_step(config.env)
    else:
        model_step = dynamics.make_model_step(state.model, model_config, reward_fn=reward_fn,
                                              termination_fn=termination_fn)
    key_pairs, key_draws = jax.random.split(key)
    real = buffer.sample(state.replay, key_pairs, pairs)
    alpha = jnp.exp(state.learner.log_alpha)

    def draw(k):
        key_model, key_policy = jax.random.split(k)
        batch = dyna.model_batch(model_step, key_model, real, num_samples)
        return sac.critic_regression(nets, config.learner.gamma, state.learner, batch,
                                     key_policy, alpha)[2]

    targets = jax.vmap(draw)(jax.random.split(key_draws, repeats))  # [repeats, pairs]
    return targets.var(axis=0).mean()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--ks", default="1,5")
    parser.add_argument("--updates-per-step", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threshold", type=float, default=-200.0)
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    print(f"machine: {machine()}")
    print(f"{ENV}, {args.seeds} seeds from key {args.seed}, {args.steps} env steps, "
          f"G = {args.updates_per_step} updates per step of B = {args.batch_size} pairs")
    runs = {}
    for k in ks:
        config = dyna.Config.for_env(env=ENV, total_steps=args.steps, num_next_samples=k,
                                     updates_per_step=args.updates_per_step,
                                     batch_size=args.batch_size)
        start = time.perf_counter()
        state, metrics = jax.jit(jax.vmap(dyna.make_train(config)))(keys)
        metrics = jax.tree.map(np.asarray, metrics)
        runs[k] = (config, state, metrics, time.perf_counter() - start)
        per_seed = steps_to(metrics, args.threshold)
        final = metrics["eval_return"][:, -1]
        print(f"K = {k}: steps to {args.threshold:g}: median {np.median(per_seed):.0f} "
              f"({steps_shown(per_seed)}); final median {np.median(final):.0f} "
              f"[{np.percentile(final, 25):.0f}, {np.percentile(final, 75):.0f}]; "
              f"{runs[k][3]:.0f} s", flush=True)
        cells = [f"{b}: {stat[0]:.0f} [{stat[1]:.0f}, {stat[2]:.0f}]"
                 for b in BUDGETS if (stat := at_budget(metrics, b)) is not None]
        print("    " + "; ".join(cells), flush=True)

    print("\ntarget variance over 64 draws, mean over 256 real (s, a), median [min, max] "
          "over seeds")
    key = jax.random.key(args.seed + 1000)
    for k, (config, state, _, _) in runs.items():
        for source in ("learned model", "true dynamics"):
            cells = []
            for samples in (1, 5):
                fn = jax.jit(jax.vmap(functools.partial(
                    target_variance, config, num_samples=samples,
                    true_dynamics=source == "true dynamics")))
                v = np.asarray(fn(state, jax.random.split(key, args.seeds)))
                cells.append(f"K' = {samples}: {np.median(v):.3g} [{v.min():.3g}, {v.max():.3g}]")
            print(f"  trained with K = {k}, targets through the {source}: " + "; ".join(cells),
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
