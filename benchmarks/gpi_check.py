"""Barreto et al.'s GPI theorem, checked exactly on the four-room object grid.

    python benchmarks/gpi_check.py [--tasks 20] [--steps 20000] [--heldout 10] [--seed 0]

1. Train SFQL (``purembrl.algos.sf_gpi``) on ``--tasks`` tasks; policy i is greedy for its own
   task: pi_i(s) = argmax_a w_i . psi_i(s, a) with the learned tables.
2. Evaluate every pi_i exactly on the exact deterministic model (``env.tabular_model()``, all
   169 * 2^12 states): its successor features psi^{pi_i}, by pointer doubling over the policy's
   successor graph (2^11 steps of the discounted sum in 11 array passes).
3. For ``--heldout`` new tasks w (never trained on), compare at every non-terminal state the
   exact value of the GPI policy with the best constituent policy, max_i V^{pi_i}(s):
   * GPI over the exact psi^{pi_i}: Theorem 1 says V^GPI >= max_i V^{pi_i} everywhere;
   * GPI over the learned psi_i: the guarantee weakens to max_i V^{pi_i} - 2 eps / (1 - g),
     eps = max |w . (psi_i - psi^{pi_i})| the error of the learned tables in value units.
   Printed per task: fraction of states where the inequality holds, the worst margin, eps and
   the bound, and the values at the start state.
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

from purembrl import envs, successor  # noqa: E402
from purembrl.algos import sf_gpi  # noqa: E402


def discounted_sum(values, successor_index, discount, doublings: int = 11):
    """``sum_k (prod of discounts) values[succ^k(s)]`` for k < 2^doublings, by pointer doubling.
    ``values [S, ...]``, ``successor_index [S]``, ``discount [S]`` (0 where the future ends)."""
    acc, ptr, disc = values, successor_index, discount
    for _ in range(doublings):
        acc = acc + disc.reshape(-1, *([1] * (acc.ndim - 1))) * acc[ptr]
        disc = disc * disc[ptr]
        ptr = ptr[ptr]
    return acc


def exact_sf(policy, next_index, phi, terminal, gamma):
    """psi^pi(s, a) = phi(s, a) + g (1 - d(s')) psi^pi(s', pi(s')) (unnormalised), ``[S, A, N]``."""
    S = policy.shape[0]
    rows = jnp.arange(S)
    succ = next_index[rows, policy]
    disc = jnp.where(terminal[succ] | terminal, 0.0, gamma)
    psi_v = discounted_sum(phi[rows, policy], succ, disc)  # [S, N], along pi
    cont = jnp.where(terminal[next_index], 0.0, gamma)  # [S, A]
    return phi + cont[..., None] * psi_v[next_index]


def exact_value(policy, next_index, reward, terminal, gamma):
    S = policy.shape[0]
    rows = jnp.arange(S)
    succ = next_index[rows, policy]
    disc = jnp.where(terminal[succ] | terminal, 0.0, gamma)
    return discounted_sum(reward[rows, policy], succ, disc)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--heldout", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default="FourRoomObjects")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")

    cfg = sf_gpi.Config.for_env(env=args.env, num_tasks=args.tasks, steps_per_task=args.steps,
                                eval_every=args.steps)
    start = time.perf_counter()
    state, _ = jax.jit(sf_gpi.make_train(cfg))(jax.random.key(args.seed))
    print(f"SFQL: {args.tasks} tasks x {args.steps} steps in {time.perf_counter() - start:.1f} s")

    env, _ = envs.make(args.env)
    next_index, phi, terminal = (jnp.asarray(x) for x in env.tabular_model())
    gamma = cfg.gamma
    learned = state.psi  # [T, S, A, N], unnormalised (the config's convention)
    assert not cfg.normalised
    policies = jnp.argmax(jnp.einsum("tsan,tn->tsa", learned, state.tasks), axis=-1)
    start = time.perf_counter()
    exact = jnp.stack([exact_sf(p, next_index, phi, terminal, gamma) for p in policies])
    print(f"exact psi of {args.tasks} policies over {env.num_states:,} states: "
          f"{time.perf_counter() - start:.1f} s")

    live = ~np.asarray(terminal)
    obs0 = np.concatenate([env.start, np.zeros(env.num_objects, int)])
    s0 = int(env.obs_to_index(jnp.asarray(obs0)))
    heldout = sf_gpi.sample_tasks(jax.random.key(10_000 + args.seed), args.heldout,
                                  env.num_types)
    gpi = jax.jit(jax.vmap(successor.gpi_action, in_axes=(1, None)))
    print(f"\n{args.heldout} held-out tasks; margins are V^GPI - max_i V^pi_i over "
          f"{live.sum():,} non-terminal states")
    print(f"{'w_objects':>22} | {'exact psi: holds':>16} {'worst':>9} | {'learned psi: holds':>18} "
          f"{'worst':>9} {'eps':>7} {'-2eps/(1-g)':>11} | {'V0 best pi_i':>12} {'V0 GPI':>7} "
          f"{'V0 GPI(learned)':>15}")
    all_exact = []
    for w in heldout:
        reward = phi @ w
        v_each = jnp.stack([exact_value(p, next_index, reward, terminal, gamma)
                            for p in policies])
        v_best = np.asarray(v_each.max(0))
        rows = []
        for psis in (exact, learned):
            action = gpi(psis, w)
            v = np.asarray(exact_value(action, next_index, reward, terminal, gamma))
            margin = (v - v_best)[live]
            rows.append((np.mean(margin >= -1e-4), margin.min(), v[s0]))
        eps = float(jnp.max(jnp.abs(jnp.einsum("tsan,n->tsa", learned - exact, w))))
        all_exact.append(rows[0][0])
        w_text = np.array2string(np.asarray(w[:-1]), precision=2, separator=",")
        print(f"{w_text:>22} | {rows[0][0]:16.4%} {rows[0][1]:9.2e} | {rows[1][0]:18.2%} "
              f"{rows[1][1]:9.3f} {eps:7.3f} {-2 * eps / (1 - gamma):11.2f} | "
              f"{v_best[s0]:12.3f} {rows[0][2]:7.3f} {rows[1][2]:15.3f}")
    verdict = "holds at every state" if min(all_exact) == 1.0 else "VIOLATED"
    print(f"\nTheorem 1 with exact psi: {verdict} (min fraction {min(all_exact):.4%}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
