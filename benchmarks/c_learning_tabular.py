"""C-learning's classifier against the closed-form successor distribution, on tabular chains.

    python benchmarks/c_learning_tabular.py [--steps 10000] [--batch 1024]

For a random MDP (12 states, 3 actions, 3 successors each) and gymnax's FourRooms-misc (169
cells, 4 actions, the 2/3 slip; the goal is not terminal here, so the chain runs on), under the
uniform random policy, a logit table C(s, a, g) is trained four ways:

* TD, exact: the expected TD C-learning loss (``classifier.td_classifier_loss``) over every
  (s, a), successor s' and goal g ~ p(g), the bootstrapped weight from the current table
  (semi-gradient), Adam;
* TD, sampled: minibatches of (s, a) uniform, s' ~ P, g ~ p(g), a' ~ pi;
* MC, exact: the expected Monte Carlo loss (``classifier.mc_classifier_loss``, k = 1) with
  positives from the true p_fut and negatives from p(g);
* MC, sampled: positives at Geometric offsets (``classifier.future_offsets``) along one long
  simulated trajectory, negatives from p(g).

p(g) is uniform over the free states. The closed form is the C-learning convention (future
starting at t + 1): ``p_fut = (1 - g) P (I - g P_pi)^-1``. Reported: the largest error of the
recovered, normalised ``p_fut(. | s, a)`` over every (s, a, g) (over the (s, a) the sampled
methods saw at least ``--min-visits`` times), and the rank correlation of the recovered ratio
with the true one. The exact expectations must reach the fixed point to 1e-4.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

from purembrl import classifier, successor  # noqa: E402
from purembrl.envs import tabular  # noqa: E402

GAMMA = 0.8


def closed_form(P, pi, gamma):
    M = np.asarray(successor.sr_closed_form(successor.state_chain(P, pi), gamma))
    return np.einsum("sat,tg->sag", P, M)


def sparse_successors(P, k):
    """Indices ``[S, A, k]`` and probabilities of each (s, a)'s successors (zero-padded)."""
    idx = np.argsort(-P, axis=-1)[..., :k]
    return idx, np.take_along_axis(P, idx, -1)


def fit(loss, shape, steps, lr, key=None):
    # a constant Adam step keeps every entry moving by about lr; decaying it lets the exact
    # losses settle on their fixed point
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))

    def step(carry, k):
        logits, state = carry
        updates, state = opt.update(jax.grad(loss)(logits, k), state)
        return (optax.apply_updates(logits, updates), state), None

    logits = jnp.zeros(shape)
    keys = jax.random.split(jax.random.key(0) if key is None else key, steps)
    (logits, _), _ = jax.jit(lambda c, ks: jax.lax.scan(step, c, ks))(
        (logits, opt.init(logits)), keys)
    return jax.block_until_ready(logits)


def td_exact_loss(succ, prob, log_pi, p_goal):
    def loss(logits, _):
        target = jax.lax.stop_gradient(logits)
        log_w = jax.nn.logsumexp(target + log_pi[:, :, None], axis=1)  # [S', G]

        def one(l_sa, nxt, pr):  # l_sa [G], nxt [k], pr [k]
            per = jax.vmap(jax.vmap(classifier.td_classifier_loss, in_axes=(None, 0, 0, None)),
                           in_axes=(0, None, 0, None))(l_sa[nxt], l_sa, log_w[nxt], GAMMA)
            return jnp.einsum("k,kg,g->", pr, per, p_goal)

        return jax.vmap(jax.vmap(one))(logits, succ, prob).sum()

    return loss


def mc_exact_loss(p_fut, p_goal):
    def loss(logits, _):
        def one(l_sa, pf):
            per = jax.vmap(jax.vmap(classifier.mc_classifier_loss, in_axes=(None, 0)),
                           in_axes=(0, None))(l_sa, l_sa[:, None])  # [g+, g-]
            return jnp.einsum("p,pn,n->", pf, per, p_goal)

        return jax.vmap(jax.vmap(one))(logits, p_fut).sum()

    return loss


def td_sampled_loss(P_cum, pi_cum, p_goal_cum, free, A, batch):
    S = P_cum.shape[0]

    def loss(logits, key):
        ks, ka, kn, kg, kp = jax.random.split(key, 5)
        s = free[jax.random.randint(ks, (batch,), 0, free.shape[0])]
        a = jax.random.randint(ka, (batch,), 0, A)
        s2 = jnp.minimum(jax.vmap(jnp.searchsorted)(P_cum[s, a],
                                                    jax.random.uniform(kn, (batch,))), S - 1)
        g = jnp.minimum(jnp.searchsorted(p_goal_cum, jax.random.uniform(kg, (batch,))), S - 1)
        a2 = jnp.minimum(jax.vmap(jnp.searchsorted)(pi_cum[s2], jax.random.uniform(kp, (batch,))),
                         A - 1)
        target = jax.lax.stop_gradient(logits)
        per = jax.vmap(classifier.td_classifier_loss, in_axes=(0, 0, 0, None))(
            logits[s, a, s2], logits[s, a, g], target[s2, a2, g], GAMMA)
        return per.mean()

    return loss


def simulate(P, pi, start, T, rng):
    S, A, _ = P.shape
    states, actions = np.zeros(T + 1, int), np.zeros(T, int)
    states[0] = start
    u_a, u_s = rng.random(T), rng.random(T)
    P_cum, pi_cum = np.cumsum(P, -1), np.cumsum(pi, -1)
    for t in range(T):
        actions[t] = min(np.searchsorted(pi_cum[states[t]], u_a[t]), A - 1)
        states[t + 1] = min(np.searchsorted(P_cum[states[t], actions[t]], u_s[t]), S - 1)
    return states, actions


def mc_sampled_loss(states, actions, p_goal_cum, batch):
    T = actions.shape[0]
    S = p_goal_cum.shape[0]
    obs, act, nxt = jnp.asarray(states[:-1]), jnp.asarray(actions), jnp.asarray(states[1:])

    def loss(logits, key):
        kt, kf, kn = jax.random.split(key, 3)
        t = jax.random.randint(kt, (batch,), 0, T - 200)
        goal = nxt[classifier.future_offsets(kf, t, T, GAMMA)]
        neg = jnp.minimum(jnp.searchsorted(p_goal_cum, jax.random.uniform(kn, (batch, 1))),
                          S - 1)
        s, a = obs[t], act[t]
        per = jax.vmap(classifier.mc_classifier_loss)(logits[s, a, goal],
                                                      logits[s[:, None], a[:, None], neg])
        return per.mean()

    return loss


def rank_correlation(x, y):
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def report(name, method, logits, truth, p_goal, mask, seconds):
    if not mask.any():
        print(f"{name:>14} {method:>12} {'no (s, a) with enough data':>36}")
        return 0.0
    ratio = np.asarray(classifier.density_ratio(jax.nn.sigmoid(logits)))
    est = ratio * p_goal
    est = est / est.sum(-1, keepdims=True)
    err = np.abs(est - truth)[mask].max()
    free_g = p_goal > 0
    corr = rank_correlation(ratio[mask][:, free_g].ravel(),
                            (truth / np.where(p_goal > 0, p_goal, 1))[mask][:, free_g].ravel())
    print(f"{name:>14} {method:>12} {err:14.2e} {corr:12.4f} {mask.sum():8d} {seconds:9.1f}")
    return err


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--trajectory", type=int, default=300_000)
    parser.add_argument("--min-visits", type=int, default=500)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    rng = np.random.default_rng(0)

    P_rand, _ = tabular.random_mdp(rng, 12, 3, branching=3)
    P_rooms, _, _ = tabular.four_rooms_mdp()
    import gymnax

    env, _ = gymnax.make("FourRooms-misc")
    free_rooms = np.asarray(env.env_map, bool).reshape(-1)
    problems = [("random MDP", P_rand, np.ones(12, bool)), ("FourRooms", P_rooms, free_rooms)]

    print(f"\ngamma {GAMMA}, uniform random policy, p(g) uniform over free states, "
          f"{args.steps} Adam steps each")
    print(f"{'chain':>14} {'method':>12} {'max |p - p*|':>14} {'rank corr':>12} {'(s, a)':>8} "
          f"{'seconds':>9}")
    worst_exact = 0.0
    for name, P, free in problems:
        S, A, _ = P.shape
        pi = np.full((S, A), 1.0 / A)
        p_goal = free / free.sum()
        truth = closed_form(P, pi, GAMMA)
        all_free = np.broadcast_to(free[:, None], (S, A))
        succ, prob = sparse_successors(P, 5 if S > 12 else 3)
        lr = 0.05
        start = time.perf_counter()
        logits = fit(td_exact_loss(jnp.asarray(succ), jnp.asarray(prob, jnp.float32),
                                   jnp.log(jnp.asarray(pi, jnp.float32)),
                                   jnp.asarray(p_goal, jnp.float32)),
                     (S, A, S), args.steps, lr)
        worst_exact = max(worst_exact, report(name, "TD exact", logits, truth, p_goal,
                                              all_free, time.perf_counter() - start))
        start = time.perf_counter()
        logits = fit(mc_exact_loss(jnp.asarray(truth, jnp.float32),
                                   jnp.asarray(p_goal, jnp.float32)),
                     (S, A, S), args.steps, lr)
        worst_exact = max(worst_exact, report(name, "MC exact", logits, truth, p_goal,
                                              all_free, time.perf_counter() - start))
        cum = lambda x: jnp.asarray(np.cumsum(x, -1), jnp.float32)  # noqa: E731
        start = time.perf_counter()
        logits = fit(td_sampled_loss(cum(P), cum(pi), cum(p_goal),
                                     jnp.asarray(np.flatnonzero(free)), A, args.batch),
                     (S, A, S), args.steps, 0.02)
        report(name, "TD sampled", logits, truth, p_goal, all_free, time.perf_counter() - start)
        states, actions = simulate(P, pi, int(np.flatnonzero(free)[0]), args.trajectory, rng)
        visits = np.bincount(states[:-1] * A + actions, minlength=S * A).reshape(S, A)
        start = time.perf_counter()
        logits = fit(mc_sampled_loss(states, actions, cum(p_goal), args.batch),
                     (S, A, S), args.steps, 0.02)
        report(name, "MC sampled", logits, truth, p_goal, visits >= args.min_visits,
               time.perf_counter() - start)
    verdict = "reached" if worst_exact < 1e-4 else "NOT reached"
    print(f"\nexact expectations: fixed point to 1e-4 {verdict} (worst {worst_exact:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
