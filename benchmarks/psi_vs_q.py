"""The notes' claim, measured: given good features phi, successor features psi are easier to
learn than Q itself (issue 25).

    python benchmarks/psi_vs_q.py [--seeds 8] [--rounds 8] [--steps-per-round 4000]
                                  [--env FourRoomObjects-small] [--seed 0]
                                  [--part both|control|evaluation] [--updates 8000]
    python benchmarks/psi_vs_q.py --env FourRoomObjects --part evaluation --updates 32000 \
                                  --record-every 1000       # the 13 x 13 grid, ~13 min here

The task: Barreto et al.'s four-room object grid (``--env``; the 4 x 5 layout by default), its
reward r = w . phi linear in the known features phi (which object type was picked up, whether the
goal was reached). Both learners see the same high-dimensional observation, the grid state one-hot
per coordinate (position and every object's flag), through the same MLP torso (256 x 256 ReLU,
Adam at 1e-3, minibatches of 128, a target network copied every 100 updates, gamma 0.95) and the
same budget: one update per environment step.

* **psi** (``sf_policy_iteration``, the notes' Algorithm 1, ``encoding="obs"``): rounds of
  ``--steps-per-round`` epsilon-greedy steps (epsilon 0.15), then as many TD updates of
  psi^pi (one output per action and feature), then w by least squares on (phi, r); the policy is
  greedy on w . psi. phi is given; psi's targets are phi + gamma psi'(s', pi(s')).
* **Q** (``dqn``, double DQN on one-step targets, on the observation made one-hot by
  ``OneHot``): the reward only, epsilon 1 -> 0.15 over the first round's steps, an update every
  step.

**Policy evaluation** (``--part evaluation``, the claim itself): one fixed policy pi (greedy
on the optimal Q), the same data (every (s, a) of the states reachable from the start, uniform
minibatches, the next action pi(s')), the same network, optimiser and updates; psi regresses phi
(``phi + gamma psi'``), Q the reward (``r + gamma Q'``, the same TD loss with a 1-dim cumulant),
and each estimate of Q^pi (w . psi, or Q) is scored against the exact Q^pi, on every pair or on a
fixed sample of them (the 13 x 13 grid).

Printed: the greedy return after each round (psi) and at the same env steps (Q, which is
evaluated every quarter round), median and quartiles over seeds, against the optimal return
(value iteration on the exact tabular model); how many seeds reach it; and the wall-clock of
each. Env steps and updates are nearly the same axis (one update per env step for both; Q takes
none in its first quarter round of random steps, psi takes a round's updates after its steps).
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
from gymnax.environments import environment, spaces

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402

from purembrl import envs, successor  # noqa: E402
from purembrl.algos import dqn  # noqa: E402
from purembrl.algos import sf_policy_iteration as spi  # noqa: E402
from purembrl.learners import DQNConfig  # noqa: E402
from purembrl.networks import SuccessorHead  # noqa: E402

HIDDEN = (256, 256)


class OneHot(environment.Environment):
    """A gymnax env with integer observations, observed one-hot per coordinate
    (``sf_policy_iteration.encode_obs``: what the psi network sees with ``encoding="obs"``),
    so that Q and psi get the same input. Dynamics, rewards and ``info`` are the inner env's."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        space = inner.observation_space(inner.default_params)
        self.high = np.broadcast_to(np.asarray(space.high), space.shape)
        self.size = int(sum(int(h) + 1 for h in self.high))

    @property
    def default_params(self):
        return self.inner.default_params

    @property
    def num_actions(self) -> int:
        return self.inner.num_actions

    def _encode(self, obs):
        return spi.encode_obs(obs, self.high, True)

    def step_env(self, key, state, action, params):
        obs, state, reward, done, info = self.inner.step_env(key, state, action, params)
        return self._encode(obs), state, reward, done, info

    def reset_env(self, key, params):
        obs, state = self.inner.reset_env(key, params)
        return self._encode(obs), state

    def is_terminated(self, state, params):
        return self.inner.is_terminated(state, params)

    def is_truncated(self, state, params):
        return self.inner.is_truncated(state, params)

    def action_space(self, params=None):
        return self.inner.action_space(params)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.size,), jnp.float32)


def fixed_point(step, x):
    """Iterate ``x <- step(x)`` until it stops changing (at most 5000 times)."""
    for _ in range(5000):
        new = step(x)
        if np.array_equal(new, x):
            break
        x = new
    return x


def exact_model(env, params, gamma: float):
    """The exact deterministic model (``env.tabular_model()``), the task's w and rewards
    r = w . phi, the optimal Q by value iteration to its fixed point, and the start's index."""
    next_index, phi, terminal = env.tabular_model()
    w = np.asarray(env.task_weights(params), np.float64)
    r = phi @ w
    cont = np.where(terminal, 0.0, 1.0)
    q = fixed_point(lambda q: r + gamma * (cont * q.max(1))[next_index], np.zeros(r.shape))
    obs0 = np.concatenate([env.start, np.zeros(env.num_objects, int)])
    start = int(env.obs_to_index(jnp.asarray(obs0)))
    return next_index, phi, terminal, w, r, q, start


def observations(env, index: np.ndarray) -> np.ndarray:
    """The observations ``[row, col, collected_0, ...]`` of tabular indices (the inverse of
    ``obs_to_index``)."""
    K = env.num_objects
    cell, mask = index // 2 ** K, index % 2 ** K
    return np.concatenate([np.stack([cell // env.cols, cell % env.cols], -1),
                           (mask[:, None] >> np.arange(K)) & 1], -1).astype(np.int32)


def policy_successor_features(next_index, phi, terminal, pi, gamma: float) -> np.ndarray:
    """The exact psi^pi ``[S, A, N]`` of the deterministic policy ``pi [S]`` on the exact
    model: ``phi + gamma psi^pi(s', pi(s'))`` (no bootstrap into a terminal s') to its fixed
    point (unnormalised)."""
    cont = np.where(terminal, 0.0, 1.0)[next_index][..., None]
    return fixed_point(lambda psi: phi + gamma * cont * psi[next_index, pi[next_index]],
                       np.zeros(phi.shape))


def greedy_return(next_index, r, terminal, pi, start: int, max_steps: int) -> float:
    """The undiscounted return of the deterministic policy ``pi [S]`` from ``start`` on the
    exact model with rewards ``r [S, A]``, the episode cut at ``max_steps``."""
    s, ret = start, 0.0
    for _ in range(max_steps):
        ret += r[s, pi[s]]
        s = next_index[s, pi[s]]
        if terminal[s]:
            break
    return ret


def optimal_return(env, params, gamma: float, max_steps: int) -> float:
    """The undiscounted return from the start of the gamma-optimal policy (what the greedy
    evaluations report), the episode cut at ``max_steps``."""
    next_index, _, terminal, _, r, q, start = exact_model(env, params, gamma)
    return greedy_return(next_index, r, terminal, q.argmax(1), start, max_steps)


def reachable_states(next_index, terminal, start: int) -> np.ndarray:
    """The sorted indices of the non-terminal states reachable from ``start`` on the exact
    model (breadth first, a layer at a time)."""
    seen = np.zeros(len(terminal), bool)
    frontier = np.array([start])
    while frontier.size:
        frontier = np.unique(frontier[~seen[frontier] & ~terminal[frontier]])
        seen[frontier] = True
        frontier = next_index[frontier].ravel()
    return np.flatnonzero(seen)


def evaluation_problem(env, params, gamma: float, max_pairs: int = 20_000,
                       max_states: int = 5_000):
    """The fixed-policy part: every (s, a) of the states reachable from the start (goal states
    excluded), their observations, phi, r = w . phi, whether s' is terminal, the next state's
    observation and action under pi (greedy on the optimal Q), and the exact Q^pi(s, a) =
    w . psi^pi(s, a) (iterated to its fixed point on the exact model). Errors are scored on
    every pair and state, or on ``max_pairs`` / ``max_states`` of them drawn once (a large
    grid)."""
    next_index, phi, terminal, w, r, q, start = exact_model(env, params, gamma)
    pi = q.argmax(1)
    psi = policy_successor_features(next_index, phi, terminal, pi, gamma)
    states = reachable_states(next_index, terminal, start)
    S, A = len(states), next_index.shape[1]
    s_all, a_all = np.repeat(states, A), np.tile(np.arange(A), S)
    s_next = next_index[s_all, a_all]
    rng = np.random.default_rng(0)
    pairs = (np.arange(len(s_all)) if len(s_all) <= max_pairs
             else np.sort(rng.choice(len(s_all), max_pairs, replace=False)))
    scored = states if S <= max_states else np.sort(rng.choice(states, max_states, False))
    q_pi = psi @ w
    return dict(obs=observations(env, s_all), action=a_all, phi=phi[s_all, a_all],
                reward=r[s_all, a_all], terminated=terminal[s_next],
                next_obs=observations(env, s_next), next_action=pi[s_next],
                pairs=pairs, q=q_pi[s_all[pairs], a_all[pairs]], q_state=q_pi[scored],
                state_obs=observations(env, scored), num_states=S, w=w)


def td_update(net, optimiser, inputs, next_inputs, action, cumulant, next_action, terminated,
              batch_size: int, target_period: int, gamma: float):
    """One minibatch TD step of a fixed policy's successor features on fixed data (or of its
    Q, with a 1-dim cumulant): ``psi(s, a)`` regresses ``cumulant + gamma psi'(s', a')``
    (``successor.sf_td_loss``, unnormalised), ``a'`` the policy's ``next_action``, psi' the
    target network, copied every ``target_period`` steps. ``inputs(idx)`` / ``next_inputs(idx)``
    give the network's input for rows ``idx``. Returns ``update((params, target, opt_state,
    key), t) -> (carry, None)`` for ``lax.scan``."""

    def loss(params, target_params, idx):
        rows = jnp.arange(idx.shape[0])
        psi = net.apply(params, inputs(idx))[rows, action[idx]]
        nxt = net.apply(target_params, next_inputs(idx))[rows, next_action[idx]]
        per = jax.vmap(lambda p, c, n, d: successor.sf_td_loss(p, c, n, d, gamma, False))(
            psi, cumulant[idx], nxt, terminated[idx])
        return per.mean()

    def update(carry, t):
        params, target_params, opt_state, key = carry
        key, key_batch = jax.random.split(key)
        idx = jax.random.randint(key_batch, (batch_size,), 0, action.shape[0])
        grads = jax.grad(loss)(params, target_params, idx)
        step, opt_state = optimiser.update(grads, opt_state)
        params = optax.apply_updates(params, step)
        target_params = jax.tree.map(lambda a, b: jnp.where((t + 1) % target_period == 0, a, b),
                                     params, target_params)
        return (params, target_params, opt_state, key), None

    return update


def fit_policy_evaluation(key, data, targets, readout, high, updates: int, record_every: int,
                          batch_size=128, lr=1e-3, target_period=100, gamma=0.95):
    """TD policy evaluation of the fixed pi on the fixed data, with ``targets [D, M]`` as the
    cumulant (phi: successor features, M = N; r: Q itself, M = 1), the estimate of Q^pi being
    ``readout . psi_hat``. Returns the RMSE of that estimate against the exact Q^pi over the
    scored (s, a) pairs, and the fraction of the scored states where its greedy action is
    optimal for pi's Q^pi, every ``record_every`` updates."""
    A, M = data["q_state"].shape[1], targets.shape[1]
    net = SuccessorHead(A, M, HIDDEN)
    encode = lambda o: spi.encode_obs(o, high, True)
    obs, next_obs = jnp.asarray(data["obs"]), jnp.asarray(data["next_obs"])
    pairs = jnp.asarray(data["pairs"])
    x_scored, x_state = encode(obs[pairs]), encode(jnp.asarray(data["state_obs"]))
    q_exact, q_state = jnp.asarray(data["q"], jnp.float32), jnp.asarray(data["q_state"])
    best = q_state.max(1)
    targets, readout = jnp.asarray(targets, jnp.float32), jnp.asarray(readout, jnp.float32)
    action, next_action = jnp.asarray(data["action"]), jnp.asarray(data["next_action"])
    terminated = jnp.asarray(data["terminated"])
    key_init, key = jax.random.split(key)
    params = net.init(key_init, x_state[:1])
    optimiser = optax.adam(lr)

    update = td_update(net, optimiser, lambda idx: encode(obs[idx]),
                       lambda idx: encode(next_obs[idx]), action, targets, next_action, terminated,
                       batch_size, target_period, gamma)

    def block(carry, t0):
        carry, _ = jax.lax.scan(update, carry, t0 + jnp.arange(record_every))
        q_hat = net.apply(carry[0], x_scored)[jnp.arange(pairs.shape[0]), action[pairs]] @ readout
        greedy = jnp.argmax(net.apply(carry[0], x_state) @ readout, axis=-1)
        chosen = jnp.take_along_axis(q_state, greedy[:, None], 1)[:, 0]
        return carry, (jnp.sqrt(jnp.mean((q_hat - q_exact) ** 2)),
                       jnp.mean(chosen >= best - 1e-6))

    carry = (params, params, optimiser.init(params), key)
    _, (rmse, agree) = jax.lax.scan(block, carry,
                                    record_every * jnp.arange(updates // record_every))
    return rmse, agree


def evaluation_part(env_name: str, keys, updates: int, record_every: int) -> None:
    """psi and Q fitted to the same fixed policy on the same data (the notes' claim itself)."""
    env, params = envs.make(env_name)
    gamma = spi.Config.gamma
    data = evaluation_problem(env, params, gamma)
    space = env.observation_space(params)
    high = np.broadcast_to(np.asarray(space.high), space.shape)
    w = data["w"]
    arrays = {k: data[k] for k in ("obs", "next_obs", "pairs", "state_obs", "q", "q_state",
                                   "action", "next_action", "terminated")}  # jit arguments
    runs = {}
    for label, targets, readout in (("psi", data["phi"], w),
                                    ("Q", data["reward"][:, None], np.ones(1))):
        start = time.perf_counter()
        fit = jax.jit(jax.vmap(lambda k, d, t, v: fit_policy_evaluation(
            k, d, t, v, high, updates, record_every, gamma=gamma), in_axes=(0, None, None, None)))
        rmse, agree = (np.asarray(v) for v in fit(keys, arrays, targets, readout))
        runs[label] = (rmse, agree, time.perf_counter() - start)
    scale = float(np.std(data["q"]))
    print(f"\npolicy evaluation of a fixed pi (greedy on the optimal Q) on every (s, a) of the "
          f"{data['num_states']} reachable states ({len(data['obs'])} pairs, uniform "
          f"minibatches); RMSE of the Q^pi estimate against the exact one on {len(data['q'])} "
          f"pairs (std of Q^pi {scale:.3g}) and the fraction of {len(data['q_state'])} states "
          "whose greedy action is optimal for Q^pi, median [q25, q75] over seeds")
    print("| updates | psi: RMSE | Q: RMSE | psi: greedy optimal | Q: greedy optimal |")
    print("|---|---|---|---|---|")
    fmt = lambda v: f"{np.median(v):.3g} [{np.percentile(v, 25):.3g}, {np.percentile(v, 75):.3g}]"
    count = updates // record_every
    for i in sorted({0, 1, 3, 7, count // 4 - 1, count // 2 - 1, count - 1} & set(range(count))):
        print(f"| {(i + 1) * record_every} | {fmt(runs['psi'][0][:, i])} | "
              f"{fmt(runs['Q'][0][:, i])} | {fmt(runs['psi'][1][:, i])} | "
              f"{fmt(runs['Q'][1][:, i])} |")
    for label, (rmse, _, seconds) in runs.items():
        print(f"{label}: final RMSE per seed {[round(float(v), 3) for v in rmse[:, -1]]}; "
              f"{seconds:.0f} s (compile included)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="FourRoomObjects-small", choices=spi.ENVS)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps-per-round", type=int, default=4000)
    parser.add_argument("--part", default="both", choices=("control", "evaluation", "both"))
    parser.add_argument("--updates", type=int, default=8000,
                        help="TD updates of the fixed-policy evaluation part")
    parser.add_argument("--record-every", type=int, default=250)
    args = parser.parse_args(argv)
    if min(args.seeds, args.rounds) < 1 or args.steps_per_round < 4 or args.steps_per_round % 4:
        parser.error("--seeds and --rounds must be >= 1, --steps-per-round a positive multiple "
                     "of 4")
    if args.record_every < 1 or args.updates < args.record_every:
        parser.error("--record-every must be >= 1 and at most --updates")
    n = args.steps_per_round
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    print(f"machine: {machine()}; {args.env}, {args.seeds} seeds from key {args.seed}, "
          f"{args.rounds} rounds of {n} env steps and {n} updates")
    if args.part != "control":
        evaluation_part(args.env, keys, args.updates, args.record_every)
    if args.part == "evaluation":
        return 0

    psi_cfg = spi.Config.for_env(env=args.env, encoding="obs", hidden_sizes=HIDDEN,
                                 normalised=False, lr=1e-3, num_iterations=args.rounds,
                                 steps_per_iteration=n, td_updates=n)
    start = time.perf_counter()
    _, m = jax.jit(jax.vmap(spi.make_train(psi_cfg)))(keys)
    psi = np.asarray(m["eval_return"])
    psi_seconds = time.perf_counter() - start

    name = f"{args.env}-onehot"
    envs.register(name, lambda: OneHot(envs.make(args.env)[0]), overwrite=True)
    q_cfg = dqn.Config(
        env=name, total_steps=args.rounds * n, eval_every=n // 4, initial_random_steps=n // 4,
        buffer_size=args.rounds * n, batch_size=psi_cfg.batch_size, updates_per_step=1,
        eval_episodes=psi_cfg.eval_episodes,
        learner=DQNConfig(hidden_sizes=HIDDEN, learning_rate=psi_cfg.lr, gamma=psi_cfg.gamma,
                          double_q=True, target_update="periodic",
                          target_period=psi_cfg.target_period, eps_end=psi_cfg.epsilon,
                          eps_decay_steps=n - n // 4))
    start = time.perf_counter()
    _, m = jax.jit(jax.vmap(dqn.make_train(q_cfg)))(keys)
    q = np.asarray(m["eval_return"])
    q_steps = np.asarray(m["env_steps"])[0]
    q_seconds = time.perf_counter() - start

    env, params = envs.make(args.env)
    best = optimal_return(env, params, psi_cfg.gamma, psi_cfg.eval_max_steps)
    print(f"optimal return {best:.4g}; greedy return after each round, median [q25, q75] over "
          "seeds")
    print("| env steps = updates | psi (Algorithm 1) | Q (double DQN) |")
    print("|---|---|---|")
    fmt = lambda v: f"{np.median(v):.3g} [{np.percentile(v, 25):.3g}, {np.percentile(v, 75):.3g}]"
    for i in range(args.rounds):
        q_col = q[:, np.searchsorted(q_steps, (i + 1) * n)]
        print(f"| {(i + 1) * n} | {fmt(psi[:, i])} | {fmt(q_col)} |")
    at_rounds = np.searchsorted(q_steps, n * np.arange(1, args.rounds + 1))
    for label, curve, seconds in (("psi", psi, psi_seconds), ("Q", q[:, at_rounds], q_seconds)):
        reached = np.isclose(curve, best, atol=1e-4)
        first = [int((np.argmax(r) + 1) * n) if r.any() else None for r in reached]
        print(f"{label}: {int(reached[:, -1].sum())} of {args.seeds} seeds optimal at the end, "
              f"{int(reached.any(axis=1).sum())} ever; first step optimal per seed {first}; "
              f"{seconds:.0f} s (compile included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
