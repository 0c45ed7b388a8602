"""GPI over deep successor features on held-out tasks (issue 25; Barreto et al. 2017, Sec. 4-5).

    python benchmarks/deep_gpi.py [--env FourRoomObjects-small] [--seeds 8] [--seed 0]
                                  [--rounds 8] [--steps-per-round 4000] [--held-out 16]
                                  [--shared-updates 8000] [--refit-data union]
                                  [--walk-steps 128000] [--refit-lr-decay] [--trained FILE]

About 30 minutes on a 2-core CPU at the defaults (the training, 4 x 8 seeds, is most of it;
``--trained FILE`` keeps the networks, so another ``--shared-updates`` reuses them).

Transfer with function approximation: a psi network per training task, each learned by the
notes' Algorithm 1 (``sf_policy_iteration`` with ``encoding="obs"``: the grid state one-hot per
coordinate into a 256 x 256 ReLU MLP, one output per action and feature; the settings of
``tests/test_sf_policy_iteration.py``'s deep test), then new tasks, never trained on, solved
with no learning at all by generalised policy improvement (Theorem 1):

    pi_GPI(s) = argmax_a max_i w' . psi_i(s, a)

The task family is Barreto's object grid: r = w . phi with phi = [picked type 1, 2, 3, reached
the goal] and w = [object weights, 1]. The training tasks reward one object type and penalise
the others (and one penalises all three: go to the goal); the held-out tasks draw their object
weights from U(-1, 1)^3 (a fixed draw, the same for every seed). Each policy is run greedily
from the start (the grid is deterministic, so one episode is its return), its return on task w'
being w' . (the sum of phi along the episode). Compared, per held-out task:

* **best single policy**: the best of the training tasks' own policies (greedy on
  w_i . psi_i, what Algorithm 1 returns for task i) on w', picked per task with hindsight;
* **one policy improved** (GPI over one psi): greedy on w' . psi_i, the best i per task with
  hindsight;
* **GPI** over all the psi_i: no choice, no hindsight;
* GPI over the same policies' psi_i **re-fitted on shared transitions** (``--shared-updates``
  TD steps each, from the trained network, the policy held fixed): Algorithm 1 fits psi_i only
  where pi_i's own episodes went, GPI reads it where the other policies go too.
  ``--refit-data`` says on what: every training task's transitions (``union``), a uniform
  random walk of ``--walk-steps`` per seed (``walk``: task-agnostic, no reward read), the
  same walk with each (s, a) it saw kept once and repeated (``walk_even``: the agent's own
  data, evened out by its own counts),
  epsilon-greedy GPI over the trained psi on 16 practice tasks drawn like the held-out ones
  but never them (``gpi``: where GPI's mixtures of the policies go), or every
  (s, a) reachable from the start once (``cover``: uniform coverage, enumerated from the exact
  model, which only a small grid allows);
* GPI over the *exact* successor features of the same policies (each training policy's
  psi^pi computed on the exact tabular model): the theorem's own setting, which separates
  what the networks' errors cost from what GPI over these policies can give;
* the optimal return of w' (value iteration on the exact tabular model).

Printed: the mean over held-out tasks of each method's return and of its regret to the optimum,
median and quartiles over seeds, how often GPI is at least as good as the best single policy
(and strictly better), and each training policy's return on its own task against the optimum
(whether the psi_i are good enough to transfer from).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402
from psi_vs_q import (  # noqa: E402
    exact_model,
    greedy_return,
    observations,
    optimal_return,
    policy_successor_features,
    reachable_states,
    td_update,
)

from purembrl import envs  # noqa: E402
from purembrl.algos import sf_policy_iteration as spi  # noqa: E402
from purembrl.networks import SuccessorHead  # noqa: E402

# One object type rewarded, the others penalised; the last penalises all three (the goal only).
TRAIN_TASKS = ((1.0, -1.0, -1.0), (-1.0, 1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, -1.0, -1.0))
HIDDEN = (256, 256)
REFIT_DATA = ("union", "walk", "walk_even", "gpi", "cover")


def held_out_tasks(count: int, num_types: int = 3, seed: int = 123) -> np.ndarray:
    """``[count, num_types]`` object weights from U(-1, 1), the same draw on every call."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (count, num_types))


def env_params_text(weights) -> str:
    """The ``env_params`` that set a task's object weights."""
    return "object_weights=" + ";".join(f"{float(x):.6g}" for x in weights)


def config(env: str, weights, rounds: int, steps: int) -> spi.Config:
    """Algorithm 1 with deep psi on task ``weights`` (the deep test's settings)."""
    return spi.Config.for_env(env=env, env_params=env_params_text(weights), encoding="obs",
                              hidden_sizes=HIDDEN, normalised=False, lr=1e-3,
                              num_iterations=rounds, steps_per_iteration=steps, td_updates=steps)


class Trained(NamedTuple):
    """Algorithm 1's results on the training tasks, stacked ``[task, seed, ...]``: the psi
    parameters, the fitted w ``[N]``, the final greedy return on the own task, each task's
    stored transitions (``spi.Step``, the whole run's), and the seconds per task (``[task]``)."""

    psi_params: object
    policy_w: jax.Array
    own_returns: np.ndarray
    replay: spi.Step
    seconds: list


def train_tasks(env: str, keys, tasks, rounds: int, steps: int) -> Trained:
    """Algorithm 1 on each training task, the seeds under one ``jit(vmap)``."""
    params, ws, returns, replays, seconds = [], [], [], [], []
    for i, weights in enumerate(tasks):
        start = time.perf_counter()
        train = jax.jit(jax.vmap(spi.make_train(config(env, weights, rounds, steps))))
        state, metrics = train(jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, i))
        jax.block_until_ready(state.params)
        seconds.append(time.perf_counter() - start)
        params.append(state.params)
        ws.append(state.policy_w)
        returns.append(np.asarray(metrics["eval_return"])[:, -1])
        replays.append(state.replay.data)  # every slot filled: capacity = the run's steps
    stack = lambda xs: jax.tree.map(lambda *x: jnp.stack(x), *xs)
    return Trained(stack(params), jnp.stack(ws), np.stack(returns), stack(replays), seconds)


def random_walk(env_name: str, keys, steps: int) -> spi.Step:
    """``[seed, steps]`` transitions of the uniform random policy from the start (episodes
    reset at the goal or the time limit), one walk per key: task-agnostic data, no reward
    used (phi is the env's)."""
    env, params = envs.make(env_name)

    def walk(key):
        obs, state = env.reset(key, params)

        def body(carry, key):
            obs, state = carry
            key_action, key_env = jax.random.split(key)
            a = jax.random.randint(key_action, (), 0, env.num_actions).astype(jnp.int32)
            next_obs, state, r, terminated, _, info = env.step(key_env, state, a, params)
            step = spi.Step(obs, a, info["features"], r, info["final_observation"], terminated)
            return (next_obs, state), step

        return jax.lax.scan(body, (obs, state), jax.random.split(key, steps))[1]

    return jax.jit(jax.vmap(walk))(keys)


def evened_out(env_name: str, data: spi.Step, rows: int = 16_384) -> spi.Step:
    """``[seed, rows]``: each seed's transitions with every distinct (s, a) among them kept
    once (its first occurrence) and the set repeated to ``rows`` rows, so that a uniform
    minibatch draws each (s, a) the agent saw equally often, however often it was visited.
    (The env is deterministic, so a pair is one transition.) This is the agent's own data
    and its own counts, reweighted: no pair it never tried is added."""
    env, _ = envs.make(env_name)
    index = np.asarray(env.obs_to_index(data.obs)) * env.num_actions + np.asarray(data.action)
    picks = []
    for seed_index in index:
        _, first = np.unique(seed_index, return_index=True)
        picks.append(np.resize(np.sort(first), rows))
    picks = np.stack(picks)  # [seed, rows]
    return jax.tree.map(lambda x: jnp.asarray(np.take_along_axis(
        np.asarray(x), picks.reshape(picks.shape + (1,) * (x.ndim - 2)), axis=1)), data)


def gpi_practice(env_name: str, psi_params, keys, steps: int, num_tasks: int = 16,
                 epsilon: float = 0.1) -> spi.Step:
    """``[seed, steps]`` transitions of epsilon-greedy GPI over the seed's trained psi networks
    (``psi_params [P, seed, ...]``) on ``num_tasks`` practice tasks per seed, drawn like the
    held-out ones (object weights ~ U(-1, 1)^3, goal 1) from the seed's key, never the
    held-out draw; ``steps / num_tasks`` steps each from the start, episodes resetting. GPI
    goes where a mixture of the policies goes, which no training task's episodes cover."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon={epsilon} is invalid: allowed 0 <= epsilon <= 1")
    if not steps >= num_tasks >= 1:
        raise ValueError(f"steps={steps}, num_tasks={num_tasks} is invalid: allowed steps >= "
                         "num_tasks >= 1")
    env, params = envs.make(env_name)
    space = env.observation_space(params)
    high = np.broadcast_to(np.asarray(space.high), space.shape)
    net = SuccessorHead(env.num_actions, env.num_features, HIDDEN)
    per_task = steps // num_tasks

    def run_task(psi, key, w):
        key_reset, key = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(carry, key):
            obs, state = carry
            key_explore, key_random, key_env = jax.random.split(key, 3)
            x = spi.encode_obs(obs, high, True)
            q = jnp.max(jax.vmap(lambda p: net.apply(p, x))(psi) @ w, axis=0)  # [A]
            a = jnp.where(jax.random.uniform(key_explore) < epsilon,
                          jax.random.randint(key_random, (), 0, env.num_actions),
                          jnp.argmax(q)).astype(jnp.int32)
            next_obs, state, r, terminated, _, info = env.step(key_env, state, a, params)
            step = spi.Step(obs, a, info["features"], r, info["final_observation"], terminated)
            return (next_obs, state), step

        return jax.lax.scan(body, (obs, state), jax.random.split(key, per_task))[1]

    def run_seed(psi, key):
        key_tasks, key = jax.random.split(key)
        objects = jax.random.uniform(key_tasks, (num_tasks, env.num_features - 1),
                                     minval=-1.0, maxval=1.0)
        w = jnp.concatenate([objects, jnp.ones((num_tasks, 1))], axis=1)
        data = jax.vmap(run_task, in_axes=(None, 0, 0))(psi, jax.random.split(key, num_tasks),
                                                         w)
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), data)

    return jax.jit(jax.vmap(run_seed, in_axes=(1, 0)))(psi_params, keys)


def reachable_pairs(env_name: str) -> spi.Step:
    """Every (s, a) of every non-terminal state reachable from the start, once, with the exact
    model's s', phi and termination: uniform coverage of the state space, which only a small
    tabular env can enumerate (the reward is left zero; the re-fit reads phi)."""
    env, params = envs.make(env_name)
    next_index, phi, terminal, *_, start = exact_model(env, params, spi.Config.gamma)
    states = reachable_states(next_index, terminal, start)
    s = np.repeat(states, env.num_actions)
    a = np.tile(np.arange(env.num_actions), len(states))
    s_next = next_index[s, a]
    return spi.Step(obs=jnp.asarray(observations(env, s)), action=jnp.asarray(a, jnp.int32),
                    phi=jnp.asarray(phi[s, a], jnp.float32), reward=jnp.zeros(len(s)),
                    next_obs=jnp.asarray(observations(env, s_next)),
                    terminated=jnp.asarray(terminal[s_next]))


def refit_on_shared_data(env_name: str, trained: Trained, updates: int, key,
                         batch_size: int = 128, lr: float = 1e-3, target_period: int = 100,
                         gamma: float = 0.95, data: spi.Step | None = None,
                         lr_decay: bool = False):
    """Each training policy's psi evaluated again, on shared transitions (its seed's):
    ``updates`` TD steps of ``phi + gamma psi'(s', pi_i(s'))`` from the trained network, pi_i
    fixed (greedy on ``w_i . psi_i`` of the trained network). Algorithm 1 fits psi_i only where
    pi_i's own epsilon-greedy episodes went; GPI reads every psi_i where the *other* policies
    go as well. ``data``: ``[seed, rows]`` transitions (a ``random_walk``, the
    ``reachable_pairs`` per seed), or ``None``: the union of every training task's
    transitions. ``lr_decay``: Adam's rate decays linearly to zero over the ``updates``, so the
    fit ends where its minibatch noise has died out (else a constant ``lr``). Returns the new
    parameters ``[task, seed, ...]``."""
    env, params = envs.make(env_name)
    space = env.observation_space(params)
    high = np.broadcast_to(np.asarray(space.high), space.shape)
    net = SuccessorHead(env.num_actions, env.num_features, HIDDEN)
    optimiser = optax.adam(optax.linear_schedule(lr, 0.0, updates) if lr_decay else lr)
    encode = lambda o: spi.encode_obs(o, high, True)
    # the union of the tasks' transitions, per seed: [seed, task * C, ...]
    union = data if data is not None else jax.tree.map(
        lambda x: jnp.swapaxes(x, 0, 1).reshape(x.shape[1], -1, *x.shape[3:]), trained.replay)

    def fit(policy_params, w, data, key):
        next_action = jnp.argmax(net.apply(policy_params, encode(data.next_obs)) @ w, axis=-1)
        update = td_update(net, optimiser, lambda idx: encode(data.obs[idx]),
                           lambda idx: encode(data.next_obs[idx]), data.action, data.phi,
                           next_action, data.terminated, batch_size, target_period, gamma)
        carry = (policy_params, policy_params, optimiser.init(policy_params), key)
        return jax.lax.scan(update, carry, jnp.arange(updates))[0][0]

    P, seeds = trained.policy_w.shape[:2]
    keys = jax.random.split(key, (P, seeds))
    per_seed = jax.vmap(fit, in_axes=(0, 0, 0, 0))  # seeds
    per_task = jax.vmap(per_seed, in_axes=(0, 0, None, 0))  # tasks share the seed's union
    return jax.jit(per_task)(trained.psi_params, trained.policy_w, union, keys)


def make_transfer(env_name: str, max_steps: int):
    """``transfer(psi_params [P, ...], policy_w [P, N], w_new [N]) -> [3 + 2P]`` returns on
    ``w_new``: GPI, then each policy i as trained (greedy on w_i . psi_i), then each policy i
    improved on w_new (greedy on w_new . psi_i). Every policy runs one greedy episode of at most
    ``max_steps`` steps from the start; its return is ``w_new . sum(phi)``."""
    env, params = envs.make(env_name)
    space = env.observation_space(params)
    high = np.broadcast_to(np.asarray(space.high), space.shape)
    net = SuccessorHead(env.num_actions, env.num_features, HIDDEN)

    def psis(psi_params, obs):  # [P, A, N]
        x = spi.encode_obs(obs, high, True)
        return jax.vmap(lambda p: net.apply(p, x))(psi_params)

    def features(act) -> jax.Array:
        """The summed phi of one greedy episode from the start (the grid is deterministic)."""
        key = jax.random.key(0)
        obs, state = env.reset_env(key, params)

        def body(carry, _):
            obs, state, alive, total = carry
            obs, state, _, done, info = env.step_env(key, state, act(obs), params)
            return (obs, state, alive & ~done, total + alive * info["features"]), None

        carry = (obs, state, jnp.ones((), bool), jnp.zeros(env.num_features))
        return jax.lax.scan(body, carry, None, length=max_steps)[0][3]

    def transfer(psi_params, policy_w, w_new):
        num = policy_w.shape[0]
        gpi = features(lambda o: jnp.argmax(jnp.max(psis(psi_params, o) @ w_new, axis=0)))

        def single(i, w):
            return features(lambda o: jnp.argmax(psis(psi_params, o)[i] @ w))

        own = jax.vmap(single)(jnp.arange(num), policy_w)
        improved = jax.vmap(single, in_axes=(0, None))(jnp.arange(num), w_new)
        return jnp.concatenate([gpi[None], own, improved]) @ w_new

    return transfer


def exact_gpi_returns(env, psi_params, policy_w, w_new, gamma: float, max_steps: int
                      ) -> np.ndarray:
    """``[seed, task]`` returns on ``w_new [T, N]`` of GPI over the exact successor features
    of each training policy (greedy on ``w_i . psi_i``, read off the networks at every state):
    ``psi^pi = phi + gamma psi^pi(s', pi(s'))`` to its fixed point on the exact model, then one
    greedy GPI episode from the start on that model."""
    next_index, phi, terminal, *_, start = exact_model(env, env.default_params, gamma)
    obs = jnp.asarray(observations(env, np.arange(env.num_states)))  # walls: never visited
    space = env.observation_space(env.default_params)
    high = np.broadcast_to(np.asarray(space.high), space.shape)
    net = SuccessorHead(env.num_actions, env.num_features, HIDDEN)
    x = spi.encode_obs(obs, high, True)
    # each (task, seed) policy at every state: [P, seeds, S]
    policies = np.asarray(jax.jit(jax.vmap(jax.vmap(
        lambda p, w: jnp.argmax(net.apply(p, x) @ w, axis=-1))))(psi_params, policy_w))
    P, seeds = policies.shape[:2]
    out = np.zeros((seeds, len(w_new)))
    for seed in range(seeds):
        psis = np.stack([policy_successor_features(next_index, phi, terminal,
                                                   policies[i, seed], gamma)
                         for i in range(P)])  # [P, S, A, N]
        for t, w in enumerate(np.asarray(w_new, np.float64)):
            gpi = np.argmax(np.max(psis @ w, axis=0), axis=-1)  # [S]
            out[seed, t] = greedy_return(next_index, phi @ w, terminal, gpi, start, max_steps)
    return out


def summary(x: np.ndarray) -> str:
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    return f"{q2:7.3f} [{q1:7.3f}, {q3:7.3f}]"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="FourRoomObjects-small",
                        choices=("FourRoomObjects-small", "FourRoomObjects"))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps-per-round", type=int, default=4000)
    parser.add_argument("--held-out", type=int, default=16)
    parser.add_argument("--shared-updates", type=int, default=8000,
                        help="TD updates re-fitting each psi_i on every task's transitions "
                             "(0: skip that row)")
    parser.add_argument("--refit-data", default="union", choices=REFIT_DATA,
                        help="what the re-fit trains on: every training task's transitions, "
                             "a uniform random walk of --walk-steps per seed (as it is, or "
                             "each (s, a) it saw equally often), epsilon-greedy "
                             "GPI on 16 practice tasks for --walk-steps per seed, or every "
                             "reachable (s, a) once (the exact model's)")
    parser.add_argument("--refit-lr-decay", action="store_true",
                        help="the re-fit's Adam rate decays linearly to zero over its updates "
                             "(default: a constant 1e-3)")
    parser.add_argument("--walk-steps", type=int, default=128_000,
                        help="transitions per seed for --refit-data walk, walk_even, gpi")
    parser.add_argument("--trained", default=None, metavar="FILE",
                        help="keep the trained psi networks in FILE (a pickle): loaded when it "
                             "exists (the same arguments are the caller's duty), written after "
                             "training otherwise")
    args = parser.parse_args(argv)
    print(f"# deep GPI on held-out tasks: {args.env}, {args.seeds} seeds "
          f"(split(key({args.seed}))), {args.rounds} rounds x {args.steps_per_round} steps and "
          f"TD updates per training task; {machine()}")
    env, base = envs.make(args.env)
    max_steps = spi.Config.for_env(env=args.env).eval_max_steps
    gamma = spi.Config.gamma

    def optimum(weights) -> float:
        return optimal_return(env, base.replace(object_weights=jnp.asarray(weights, jnp.float32)),
                              gamma, max_steps)

    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    tasks = np.asarray(TRAIN_TASKS)
    if args.trained and os.path.exists(args.trained):
        with open(args.trained, "rb") as f:
            trained = Trained(*pickle.load(f))
        print(f"(trained networks loaded from {args.trained})")
    else:
        trained = train_tasks(args.env, keys, tasks, args.rounds, args.steps_per_round)
        if args.trained:
            with open(args.trained, "wb") as f:
                pickle.dump(tuple(jax.device_get(trained)), f)
    psi_params, policy_w, own_returns = trained[:3]
    train_best = np.array([optimum(w) for w in tasks])
    print("\n## training tasks: Algorithm 1's final greedy return on its own task")
    print("| object weights | optimal | per seed | seeds optimal | seconds |")
    print("|---|---|---|---|---|")
    for w, best, got, sec in zip(tasks, train_best, own_returns, trained.seconds, strict=True):
        print(f"| {tuple(w.tolist())} | {best:.2f} | {', '.join(f'{x:.2f}' for x in got)} | "
              f"{int(np.sum(np.abs(got - best) < 1e-4))} of {len(got)} | {sec:.0f} |")

    held = held_out_tasks(args.held_out, tasks.shape[1])
    w_new = np.concatenate([held, np.ones((len(held), 1))], axis=1).astype(np.float32)
    transfer = jax.jit(jax.vmap(jax.vmap(make_transfer(args.env, max_steps),
                                         in_axes=(None, None, 0)),  # tasks
                                in_axes=(1, 1, None)))  # seeds
    returns = np.asarray(transfer(psi_params, policy_w, jnp.asarray(w_new)))  # [seed, task, .]
    P = len(tasks)
    gpi, own, improved = returns[..., 0], returns[..., 1:1 + P], returns[..., 1 + P:]
    best_own, best_improved = own.max(-1), improved.max(-1)
    one_policy = own.mean(1).max(-1)  # per seed: the one training policy best on average
    opt = np.array([optimum(w) for w in held])
    exact = (exact_gpi_returns(env, psi_params, policy_w, w_new, gamma, max_steps)
             if env.num_states <= 100_000 else None)
    shared = None
    refit_label = {"union": "every task's transitions",
                   "walk": f"a random walk ({args.walk_steps} steps per seed)",
                   "walk_even": f"a random walk ({args.walk_steps} steps per seed), each "
                                "(s, a) it saw equally often",
                   "gpi": f"GPI's own epsilon-greedy episodes on 16 practice tasks "
                          f"({args.walk_steps} steps per seed)",
                   "cover": "every reachable (s, a) once"}[args.refit_data]
    if args.shared_updates:
        start = time.perf_counter()
        data = None
        if args.refit_data in ("walk", "walk_even"):
            walk_keys = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), 20_000),
                                         args.seeds)
            data = random_walk(args.env, walk_keys, args.walk_steps)
            if args.refit_data == "walk_even":
                data = evened_out(args.env, data)
        elif args.refit_data == "gpi":
            practice_keys = jax.random.split(
                jax.random.fold_in(jax.random.key(args.seed), 30_000), args.seeds)
            data = gpi_practice(args.env, psi_params, practice_keys, args.walk_steps)
        elif args.refit_data == "cover":
            data = jax.tree.map(lambda x: jnp.broadcast_to(x, (args.seeds, *x.shape)),
                                reachable_pairs(args.env))
        refit = refit_on_shared_data(args.env, trained, args.shared_updates,
                                     jax.random.fold_in(jax.random.key(args.seed), 10_000),
                                     data=data, lr_decay=args.refit_lr_decay)
        shared = np.asarray(transfer(refit, policy_w, jnp.asarray(w_new)))[..., 0]
        print(f"(psi_i re-fitted on {refit_label}, {args.shared_updates} TD updates "
              f"each{', the rate decayed to zero' if args.refit_lr_decay else ''}: "
              f"{time.perf_counter() - start:.0f} s)")
    print(f"\n## {len(held)} held-out tasks (object weights ~ U(-1, 1)^3, goal 1): mean over "
          "tasks, median [quartiles] over seeds")
    print("| policy | return | regret to the optimum |")
    print("|---|---|---|")
    rows = {"optimal (exact model)": np.broadcast_to(opt, gpi.shape),
            "best single training policy (hindsight, per task)": best_own,
            "one psi improved on w' (best i, hindsight)": best_improved,
            "**GPI over all psi_i**": gpi}
    if shared is not None:
        rows[f"**GPI over psi_i re-fitted on {refit_label}**"] = shared
    if exact is not None:
        rows["GPI over the exact psi of the same policies"] = exact
    for label, r in rows.items():
        print(f"| {label} | {summary(r.mean(1))} | {summary((opt - r).mean(1))} |")
    print(f"| one training policy for every held-out task (the best on average, hindsight) | "
          f"{summary(one_policy)} | {summary(opt.mean() - one_policy)} |")
    pairs = gpi.size
    print(f"\nGPI >= best single policy in {int(np.sum(gpi >= best_own - 1e-5))} of {pairs} "
          f"(seed, task) pairs, strictly better in {int(np.sum(gpi > best_own + 1e-5))}, "
          f"optimal in {int(np.sum(np.abs(gpi - opt) < 1e-4))}; seeds whose mean GPI return "
          f"beats the best single policy's: {int(np.sum(gpi.mean(1) > best_own.mean(1)))} of "
          f"{gpi.shape[0]}; beats the one best training policy in "
          f"{int(np.sum(gpi.mean(1) > one_policy))} of {gpi.shape[0]}")
    for label, r in (("GPI over re-fitted psi", shared), ("GPI over exact psi", exact)):
        if r is not None:
            print(f"{label} >= best single policy in {int(np.sum(r >= best_own - 1e-5))} of "
                  f"{pairs} pairs, strictly better in {int(np.sum(r > best_own + 1e-5))}, "
                  f"optimal in {int(np.sum(np.abs(r - opt) < 1e-4))}; seeds whose mean beats "
                  f"the best single policy's: {int(np.sum(r.mean(1) > best_own.mean(1)))} of "
                  f"{r.shape[0]}; beats the one best training policy in "
                  f"{int(np.sum(r.mean(1) > one_policy))} of {r.shape[0]}")
            margins = ", ".join(f"{m:+.3f}" for m in r.mean(1) - best_own.mean(1))
            print(f"  per seed, its mean return minus the best single policy's: {margins}")
    return dict(gpi=gpi, own=own, improved=improved, optimal=opt, train_returns=own_returns,
                train_optimal=train_best, exact_gpi=exact, shared_gpi=shared)


if __name__ == "__main__":
    main()
