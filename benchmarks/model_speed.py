"""Model-fit throughput vs this machine's matmul rate, measured side by side in one run.

    python benchmarks/model_speed.py [--members 7] [--width 200] [--depth 4] [--batch 256]

Times (1) the ensemble's training step alone (``dynamics.train_step``: forward, backward and
Adam for all members on one minibatch each, 200 steps inside one jitted ``fori_loop``), (2) a
whole ``dynamics.fit`` on 10k Pendulum-v1 transitions with early stopping switched off (fixed
epochs, holdout evaluation included), and (3) a large ``jnp.dot`` (4096 x 4096, float32), and
prints minibatch steps per second, achieved GFLOP/s (3x the forward FLOPs for a training step;
holdout forward passes counted only for the rows actually held out) and the ratio to the matmul
rate. Goal: the fit reaches at least half the machine's matmul rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import gymnax
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, random_policy_transitions  # noqa: E402

from purembrl import buffer, dynamics  # noqa: E402


def best_time(fn, *args, repeats=5):
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(n=4096):
    a = jax.random.normal(jax.random.key(0), (n, n))
    b = jax.random.normal(jax.random.key(1), (n, n))
    dot = jax.jit(jnp.dot)
    return 2 * n ** 3 / best_time(dot, a, b) / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=7)
    parser.add_argument("--width", type=int, default=200)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)

    obs_dim, action_dim = 3, 1
    hidden = (args.width,) * args.depth
    config = dynamics.EnsembleConfig(num_members=args.members, num_elites=min(5, args.members),
                                     hidden_sizes=hidden, batch_size=args.batch,
                                     weight_decay=(2.5e-5,) * (args.depth + 1),
                                     max_epochs=args.epochs, patience=args.epochs + 1)
    state = dynamics.init(jax.random.key(0), config, obs_dim, action_dim)
    target_dim = obs_dim + 1
    sizes = [obs_dim + action_dim, *hidden, 2 * target_dim + 1]
    macs_per_row = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    step_flops = 3 * 2 * args.members * args.batch * macs_per_row

    # (1) the training step alone
    E, B, steps = args.members, args.batch, 200
    x = jax.random.normal(jax.random.key(1), (E, B, obs_dim + action_dim))
    y = jax.random.normal(jax.random.key(2), (E, B, target_dim))
    done = jnp.zeros((E, B))

    @jax.jit
    def many_steps(params, opt_state):
        def body(i, carry):
            p, o, total = carry
            p, o, nll = dynamics.train_step(state, config, p, o, state.normalizer, x, y, done)
            return p, o, total + nll.sum()
        return jax.lax.fori_loop(0, steps, body, (params, opt_state, 0.0))

    t_steps = best_time(many_steps, state.params, state.opt_state)
    step_rate = steps / t_steps

    # (2) a whole fit, fixed epochs
    env, env_params = gymnax.make("Pendulum-v1")
    data = jax.jit(random_policy_transitions, static_argnums=(0, 3))(
        env, env_params, jax.random.key(3), 10_000)
    replay = buffer.add(buffer.init(jax.tree.map(lambda v: v[0], data), 10_000), data)
    fit = jax.jit(dynamics.fit, static_argnums=3)
    t_fit = best_time(fit, state, replay, jax.random.key(4), config, repeats=2)
    _, info = fit(state, replay, jax.random.key(4), config)
    num_train, num_holdout = int(info["num_train"]), int(info["num_holdout"])
    epochs = int(info["epochs"])
    fit_steps = epochs * -(-num_train // B)
    fit_flops = fit_steps * step_flops + epochs * 2 * E * num_holdout * macs_per_row

    # (3) the machine's matmul rate
    peak = matmul_gflops()

    step_gflops = step_rate * step_flops / 1e9
    fit_gflops = fit_flops / t_fit / 1e9
    print(f"machine: {machine()}")
    print(f"ensemble {E} x {args.depth} x {args.width}, batch {B} per member "
          f"({step_flops / 1e9:.2f} GFLOP per training step)")
    print(f"  large jnp.dot (4096^2, f32):  {peak:8.1f} GFLOP/s")
    print(f"  train_step alone:             {step_gflops:8.1f} GFLOP/s  {step_rate:8.1f} steps/s"
          f"  {step_gflops / peak:6.1%} of matmul")
    print(f"  whole fit ({epochs} epochs, {fit_steps} steps, holdout {num_holdout} rows): "
          f"{fit_gflops:.1f} GFLOP/s  {fit_steps / t_fit:.1f} steps/s  "
          f"{fit_gflops / peak:.1%} of matmul  (goal: >= 50%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
