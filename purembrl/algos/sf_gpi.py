"""Transfer across tasks with successor features and GPI: SFQL (Barreto et al. 2017), tabular.

The notes' Algorithm 2. A sequence of ``num_tasks`` tasks shares the dynamics and the features
phi (known to the agent: ``info["features"]``) and differs in the reward weights w, drawn
``w_objects ~ U(-1, 1)^3`` per task (Barreto, Dabney, Munos, Hunt, Schaul, van Hasselt & Silver
2017, "Successor features for transfer in reinforcement learning", Section 5 and Algorithm 3,
SFQL). On task t the agent

* keeps one table of successor features per task seen, ``psi_i [S, A, N]`` (i <= t), the new one
  initialised from the previous task's;
* acts epsilon-greedily with generalised policy improvement over all of them,
  ``a = argmax_a max_i w_t . psi_i(s, a)``;
* learns w_t online by SGD on ``(r - w_t . phi)^2``;
* updates psi_t by TD with the next action from GPI, and (``update_gpi_policy``, as in the
  paper) also the psi of the policy GPI followed, with that policy's own greedy next action
  under its own task's w.

``method="sfql_h"`` is the paper's SFQL-h: the features are not given but learned. During the
first h = ``feature_tasks`` tasks the agent runs Q-learning (restarted per task) and keeps what
it sees; phi~ in R^h is then fitted by multi-task regression of the rewards,
``r_j = phi~ . e_j`` for task j (``successor.multitask_feature_loss``: with d = h the weights can
be fixed to the identity without loss of generality, since SF and GPI are unchanged by an
invertible linear map of the features). From task h + 1 on it runs SFQL on phi~, GPI over the
psi of tasks h+1..t and (``feature_task_sweeps``, by default) of the first h tasks' policies.
``feature_model`` says what phi~ is:

* ``"table"`` (the default): the per-task mean reward of each (s, a), known only where the
  first h tasks went (a small part of the 692,224 states of the four rooms).
* ``"mlp"`` (a function approximator, the paper's setting): an MLP of the transition,
  ``phi~(s, a, s') = f([cell(s), objects(s), cell(s'), objects(s') - objects(s)])`` (cells
  one-hot, ``transition_inputs``), fitted by Adam at the start of task h + 1 on every
  transition of the first h tasks. It generalises to (s, a) pairs never tried: which object
  vanished between s and s' says which reward was collected, whatever else is left. Alone
  it is not better than the table (benchmarks/RESULTS.md): its small errors on the many
  transitions that collect nothing act as rewards the agent can repeat. So by default
  (``feature_gate``) a second network, fitted beside it to classify ``reward != 0``, sets
  phi~ to exactly zero where it says nothing is collected.

With ``feature_task_sweeps > 0`` (the default, 20), SFQL-h also gives psi~ to the first h
tasks' policies once phi~ exists: pi_j greedy on task j's final Q table is evaluated by that
many reversed sweeps of tabular TD,

    psi_j(s, a) += alpha (phi~(s, a, s') + g psi_j(s', pi_j(s')) - psi_j(s, a)),

over the first h tasks' stored transitions (every one), and w_j = e_j (phi~'s own coordinates),
so GPI on task h + 1 starts from h policies instead of none. Without it (``0``) the first h
tasks' experience reaches later tasks only through phi~: SFQL-h's later tasks are SFQL's first
ones, which bounds its total at about 0.67 of SFQL's with h = 5; with it the table phi~
collects 0.84-0.88 of SFQL's total (benchmarks/RESULTS.md).

``method`` also switches to the paper's baselines, tabular Q-learning restarted at each task
(``"q_restart"``) or continuing across tasks (``"q_continue"``), on the same tasks and keys.

A run is ``num_tasks * steps_per_task`` environment steps; every ``eval_every`` steps of a task
and at its end the metrics record ``reward`` (collected online since the last record), ``task``
and ``eval_return`` (the greedy policy on the current task, as the learned w sees it); when
``eval_every`` does not divide ``steps_per_task``, each task's last period is shorter. ``curve``
plots the reward collected. ``alpha``, ``alpha_w``, ``gamma`` and ``epsilon`` are pytree leaves
(vmappable).

Memory: SFQL's tables hold ``num_tasks * S * A * N`` floats: on the 13 x 13 four-room grid
(S = 169 * 2^12) that is 886 MB per seed for 20 tasks. SFQL-h's ``"mlp"`` features keep the
first h tasks' transitions (``h * steps_per_task`` of them, 2 observations and a reward each).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purembrl import envs, interact, networks, rng, successor, value
from purembrl.config import (
    Presets,
    check,
    check_choice,
    check_int,
    check_sizes,
    check_types,
    static,
)
from purembrl.loop import TrainLoop, as_train

ENVS = ("FourRoomObjects", "FourRoomObjects-small")
METHODS = ("sfql", "sfql_h", "q_restart", "q_continue")
FEATURE_MODELS = ("table", "mlp")
W_STEPS = ("sgd", "nlms")
# Values this close to the greedy one count as ties: GPI's max over policies of psi . w
# differs from an equal value in the last bits (``value.random_argmax``).
TIE_ATOL = 1e-9


@struct.dataclass
class Config(Presets):
    """SFQL and its Q-learning baselines; defaults are the paper's four-room settings.

    Attributes:
      env: one of ``ENVS`` (tabular, with ``num_features`` and ``task_weights``).
      env_params: environment parameters in place of the env's defaults, ``"NAME=VALUE,..."``
        (gymnax's ``EnvParams`` fields, e.g. ``"max_speed=10"``; ``""``: the defaults).
      method: ``"sfql"`` (SF + GPI on the env's features), ``"sfql_h"`` (SF + GPI on features
        learned from the first ``feature_tasks`` tasks), ``"q_restart"`` or ``"q_continue"``
        (Q-learning baselines).
      feature_tasks: h of SFQL-h: tasks learned by Q-learning while the features are fitted.
      feature_model: SFQL-h's phi~: ``"mlp"`` (a network of the transition, generalising
        across states) or ``"table"`` (per (s, a)); see the module docstring.
      feature_hidden_sizes, feature_updates, feature_batch_size, feature_lr: the ``"mlp"``
        features' hidden layers (ReLU) and their fit: Adam steps, transitions per step, step
        size.
      feature_task_sweeps: SFQL-h: reversed sweeps of tabular TD over the first h tasks'
        stored transitions that give psi~ to those tasks' Q-learned policies (greedy on each
        task's final Q) once phi~ is fitted, so that GPI includes them (20, measured: 0.84 and
        0.88 of SFQL's total on two sets of 8 keys, against 0.55 and 0.66 without); 0: GPI
        over the policies of tasks h+1.. only. Unused by the other methods.
      feature_gate: the ``"mlp"`` features times a learned gate (True, the default): a
        second network of the transition, fitted beside them by logistic regression of
        ``reward != 0``, sets phi~ to exactly zero where it says nothing is collected
        (logit <= 0), so that the values' small errors there are no reward an agent can loop
        on; the values' own fit is the ungated one's. Measured (benchmarks/RESULTS.md, with
        the sweeps): 0.83 and 1.08 of SFQL's total on two sets of 8 keys, against 0.62 and
        0.89 ungated. False: the network's output as it is. A table, zero where no reward was
        seen already, ignores this as it does the other ``feature_*`` fields.
      w_step: the online step of w: ``"sgd"`` (the paper's) or ``"nlms"``, normalised by
        ``max(|phi|^2, 1)`` (``successor.reward_weights_sgd``): the same step for the env's
        one-hot features, stable for learned ones of any norm (SFQL-h's phi~ of the goal is
        about ``(1, ..., 1)``, norm^2 = h, on which plain SGD with ``alpha_w = 0.5`` diverges
        for h > 4).
      num_tasks: tasks in sequence. steps_per_task: environment steps on each task.
      eval_every: steps between records within a task (one more at each task's end).
      alpha: step size of the psi (or Q) tables. alpha_w: SGD step size of the reward weights.
      gamma: discount (0.95 in the paper). epsilon: exploration (0.15 in the paper).
      update_gpi_policy: SFQL also updates the psi of the policy GPI chose (the paper's SFQL).
      learn_w: learn w from rewards (True, the paper's setting) or read it from the task.
      normalised: the library's psi convention (see ``purembrl.successor``) or Barreto's.
      eval_episodes: greedy evaluation episodes per record; eval_max_steps: their length cap.
    """

    # runs stored before these fields existed (2026-12-05, 2026-12-07) ran without them
    ADDED_FIELDS = {"feature_task_sweeps": 0, "feature_gate": False}

    env: str = static("FourRoomObjects")
    env_params: str = static("")
    method: str = static("sfql")
    feature_tasks: int = static(5)
    feature_model: str = static("table")
    feature_hidden_sizes: tuple[int, ...] = static((64, 64))
    feature_updates: int = static(20_000)
    feature_batch_size: int = static(256)
    feature_lr: float = 1e-3
    feature_task_sweeps: int = static(20)
    feature_gate: bool = static(True)
    w_step: str = static("sgd")
    num_tasks: int = static(20)
    steps_per_task: int = static(20_000)
    eval_every: int = static(2_000)
    alpha: float = 0.5
    alpha_w: float = 0.5
    gamma: float = 0.95
    epsilon: float = 0.15
    update_gpi_policy: bool = static(True)
    learn_w: bool = static(True)
    normalised: bool = static(False)
    eval_episodes: int = static(1)
    eval_max_steps: int = static(200)

    def __post_init__(self):
        check_types(self)
        check_choice("env", self.env, ENVS)
        envs.parse_params(self.env_params)
        check_choice("method", self.method, METHODS)
        check_int("num_tasks", self.num_tasks, 1)
        check_int("feature_tasks", self.feature_tasks, 1)
        check_choice("feature_model", self.feature_model, FEATURE_MODELS)
        check_sizes("feature_hidden_sizes", self.feature_hidden_sizes)
        check_choice("w_step", self.w_step, W_STEPS)
        check_int("feature_updates", self.feature_updates, 1)
        check_int("feature_batch_size", self.feature_batch_size, 1)
        check("feature_lr", self.feature_lr, lambda v: v > 0, "feature_lr > 0")
        check_int("feature_task_sweeps", self.feature_task_sweeps, 0)
        if self.method == "sfql_h" and self.num_tasks <= self.feature_tasks:
            raise ValueError(f"num_tasks={self.num_tasks} is invalid with method='sfql_h': "
                             f"allowed more than feature_tasks={self.feature_tasks}")
        if self.method == "sfql_h" and not self.learn_w:
            raise ValueError("learn_w=False is invalid with method='sfql_h': learned features "
                             "have no true weights; allowed learn_w=True")
        check_int("steps_per_task", self.steps_per_task, 1)
        check_int("eval_every", self.eval_every, 1)
        check("alpha", self.alpha, lambda v: (v > 0) & (v <= 1), "0 < alpha <= 1")
        check("alpha_w", self.alpha_w, lambda v: (v > 0) & (v <= 1), "0 < alpha_w <= 1")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v < 1), "0 <= gamma < 1")
        check("epsilon", self.epsilon, lambda v: (v >= 0) & (v <= 1), "0 <= epsilon <= 1")
        check_int("eval_episodes", self.eval_episodes, 1)
        check_int("eval_max_steps", self.eval_max_steps, 1)

    @property
    def records_per_task(self) -> int:
        return -(-self.steps_per_task // self.eval_every)

    @property
    def num_iterations(self) -> int:
        return self.num_tasks * self.records_per_task


def curve(config: Config) -> tuple[str, str]:
    return ("env_steps", "reward")


@struct.dataclass
class SFState:
    """A transfer run. T tasks, S states, A actions, N features.

    Attributes:
      psi: ``[T, S, A, D]`` successor features per task's policy (SFQL) or ``[1, 1, 1, D]``;
        D = N, or h for SFQL-h.
      q: ``[S, A]`` action values (Q-learning baselines and SFQL-h's first tasks) or ``[1, 1]``.
      features: SFQL-h's ``"table"`` fit ``[S, A, h, 2]`` (sum of rewards, count per task) or
        ``[1, 1, 1, 2]``.
      phi_params: SFQL-h's ``"mlp"`` features (flax parameters, ``{"phi", "gate"}`` with
        ``feature_gate``; ``feature_model``) or ``()``.
      phi_data: the first h tasks' transitions for that fit, ``{"obs", "next_obs" [h * steps,
        ...], "reward" [h * steps]}`` (row t: step t, so task ``t // steps_per_task``; with
        ``feature_task_sweeps`` also ``"action"`` and ``"terminated"``), or ``()``.
      first_policies: ``[h, S]`` the first h tasks' greedy actions (on each task's final Q)
        with ``feature_task_sweeps``, or ``[1, 1]``.
      w: ``[T, D]`` learned reward weights per task; tasks: ``[T, N]`` the true ones.
      task: index of the current task. obs, env_state: the environment now.
      t: environment steps so far. key: the run's PRNG key.
    """

    psi: jax.Array
    q: jax.Array
    features: jax.Array
    phi_params: object
    phi_data: object
    first_policies: jax.Array
    w: jax.Array
    tasks: jax.Array
    task: jax.Array
    obs: jax.Array
    env_state: object
    t: jax.Array
    key: jax.Array


def sample_tasks(key: jax.Array, num_tasks: int, num_types: int) -> jax.Array:
    """``[num_tasks, num_types + 1]`` task weights: ``U(-1, 1)`` per object type, goal 1."""
    objects = jax.random.uniform(key, (num_tasks, num_types), minval=-1.0, maxval=1.0)
    return jnp.concatenate([objects, jnp.ones((num_tasks, 1))], axis=1)


def transition_inputs(env, obs: jax.Array, next_obs: jax.Array) -> jax.Array:
    """The input of SFQL-h's feature network for transitions ``obs -> next_obs`` (``[..., 2 +
    K]`` four-room observations): ``[one-hot cell(s), objects(s), one-hot cell(s'),
    objects(s') - objects(s)]``, ``[..., 2 * (rows * cols + K)]`` float32. The transition as a
    state and its change (as dynamics models predict a change): with ``objects(s')`` in place
    of the change, the fitted network's mean error on object rewards at object sets the first
    tasks never saw was 0.25 against 0.16 (2,000 Adam steps, measured on one seed)."""
    cells = env.rows * env.cols

    def cell(o):
        return jax.nn.one_hot(o[..., 0] * env.cols + o[..., 1], cells)

    objects, next_objects = obs[..., 2:].astype(jnp.float32), next_obs[..., 2:].astype(jnp.float32)
    return jnp.concatenate([cell(obs), objects, cell(next_obs), next_objects - objects], axis=-1)


class FeatureModel(NamedTuple):
    """SFQL-h's ``"mlp"`` phi~ as pure functions of flax parameters.

    Attributes:
      init: ``(run key, obs) -> params`` (the network's key is folded from the run's, so the
        run's other draws keep theirs).
      apply: ``(params, obs [..., 2 + K], next_obs) -> phi~ [..., h]``.
      loss: ``(params, obs [B, ...], next_obs, reward [B], task [B]) -> scalar``: the
        multi-task regression (``successor.multitask_feature_loss``), plus the gate's logistic
        loss on ``reward != 0`` when gated.
    """

    init: Callable
    apply: Callable
    loss: Callable


def feature_model(config: Config, env) -> FeatureModel:
    """phi~ of ``config`` (``feature_hidden_sizes``, ``feature_tasks`` outputs, and with
    ``feature_gate`` a second network, the gate, whose logit <= 0 sets phi~ to exactly zero:
    the values' parameters and fit are then the ungated ones', under ``"phi"``, beside
    ``"gate"``)."""
    values = networks.MLP(config.feature_hidden_sizes, config.feature_tasks, activation="relu")
    gate = networks.MLP(config.feature_hidden_sizes, 1, activation="relu")

    def init(key: jax.Array, obs: jax.Array):
        inputs = transition_inputs(env, obs, obs)
        params = values.init(jax.random.fold_in(key, 1), inputs)
        if not config.feature_gate:
            return params
        return {"phi": params, "gate": gate.init(jax.random.fold_in(key, 3), inputs)}

    def apply(params, obs: jax.Array, next_obs: jax.Array) -> jax.Array:
        inputs = transition_inputs(env, obs, next_obs)
        if not config.feature_gate:
            return values.apply(params, inputs)
        collects = gate.apply(params["gate"], inputs) > 0.0
        return jnp.where(collects, values.apply(params["phi"], inputs), 0.0)

    def loss(params, obs, next_obs, reward, task) -> jax.Array:
        inputs = transition_inputs(env, obs, next_obs)
        if not config.feature_gate:
            return successor.multitask_feature_loss(values.apply(params, inputs), reward, task)
        # the values regress every transition's reward, as ungated (a gradient of the sum
        # reaches each network from its own term only); the gate classifies reward != 0
        regression = successor.multitask_feature_loss(values.apply(params["phi"], inputs),
                                                      reward, task)
        logits = gate.apply(params["gate"], inputs)[:, 0]
        return regression + jnp.mean(optax.sigmoid_binary_cross_entropy(
            logits, (reward != 0.0).astype(jnp.float32)))

    return FeatureModel(init=init, apply=apply, loss=loss)


def make_loop(config: Config) -> TrainLoop:
    env, base_params = envs.make(config.env, config.env_params)
    S, A, N = env.num_states, env.num_actions, env.num_features
    T, H = config.num_tasks, config.feature_tasks
    learned_phi = config.method == "sfql_h"
    mlp_phi = learned_phi and config.feature_model == "mlp"
    table_phi = learned_phi and not mlp_phi
    # > 0: psi~ for the first H tasks' policies
    sweeps = config.feature_task_sweeps if learned_phi else 0
    keep_data = mlp_phi or sweeps > 0  # the first H tasks' transitions are stored
    phi_model = feature_model(config, env)
    phi_rows = H * config.steps_per_task
    obs_size = 2 + env.num_objects
    phi_optimiser = optax.adam(config.feature_lr)
    sf = config.method in ("sfql", "sfql_h")  # keeps psi tables
    tabular_q = config.method != "sfql"  # keeps a Q table
    D = H if learned_phi else N
    slots = jnp.arange(T)

    def params_for(weights):
        return base_params.replace(object_weights=weights[:-1], goal_reward=weights[-1])

    def valid_policies(c: SFState) -> jax.Array:
        if learned_phi and not sweeps:
            return (slots <= c.task) & (slots >= H)
        return slots <= c.task

    def task_w(c: SFState) -> jax.Array:
        return c.w[c.task] if config.learn_w else c.tasks[c.task]

    def greedy_q(c: SFState, s: jax.Array, w: jax.Array, use_sf: bool) -> jax.Array:
        """``[A]`` values the behaviour and evaluation policies are greedy for."""
        if use_sf:
            return successor.gpi_q(c.psi[:, s], w, valid_policies(c))
        return c.q[s]

    def init(key: jax.Array) -> SFState:
        key_tasks, key_reset, key = jax.random.split(key, 3)
        tasks = sample_tasks(key_tasks, T, N - 1)
        obs, env_state = env.reset(key_reset, params_for(tasks[0]))
        phi_params, phi_data = (), ()
        if mlp_phi:  # (the network's key is folded from the run's: other draws keep theirs)
            phi_params = phi_model.init(key, obs)
        if keep_data:
            phi_data = {"obs": jnp.zeros((phi_rows, obs_size), jnp.int32),
                        "next_obs": jnp.zeros((phi_rows, obs_size), jnp.int32),
                        "reward": jnp.zeros(phi_rows)}
            if sweeps:
                phi_data |= {"action": jnp.zeros(phi_rows, jnp.int32),
                             "terminated": jnp.zeros(phi_rows, bool)}
        return SFState(
            psi=jnp.zeros((T, S, A, D) if sf else (1, 1, 1, D)),
            q=jnp.zeros((S, A) if tabular_q else (1, 1)),
            features=jnp.zeros((S, A, H, 2) if table_phi else (1, 1, 1, 2)),
            phi_params=phi_params, phi_data=phi_data,
            first_policies=jnp.zeros((H, S) if sweeps else (1, 1), jnp.int32),
            w=jnp.zeros((T, D)), tasks=tasks, task=jnp.zeros((), jnp.int32), obs=obs,
            env_state=env_state, t=jnp.zeros((), jnp.int32), key=key)

    def fit_features(c: SFState) -> SFState:
        """SFQL-h's ``"mlp"`` phi~: ``feature_updates`` Adam steps of multi-task regression on
        minibatches drawn uniformly from the first h tasks' transitions."""
        task_of_row = jnp.arange(phi_rows) // config.steps_per_task
        key_fit = jax.random.fold_in(c.key, 2)  # (c.key itself is not advanced)

        def loss(params, rows):
            return phi_model.loss(params, c.phi_data["obs"][rows], c.phi_data["next_obs"][rows],
                                  c.phi_data["reward"][rows], task_of_row[rows])

        def update(carry, key):
            params, opt_state = carry
            rows = rng.randint(key, (config.feature_batch_size,), 0, phi_rows)
            grads = jax.grad(loss)(params, rows)
            updates, opt_state = phi_optimiser.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        carry = (c.phi_params, phi_optimiser.init(c.phi_params))
        (params, _), _ = jax.lax.scan(update, carry,
                                      jax.random.split(key_fit, config.feature_updates))
        return c.replace(phi_params=params)

    def start_task(c: SFState, task: jax.Array) -> SFState:
        """New task: fresh episode; psi_t from psi_{t-1} (SFQL); Q zeroed (``q_restart``,
        SFQL-h's first tasks)."""
        key, key_reset = jax.random.split(c.key)
        obs, env_state = env.reset(key_reset, params_for(c.tasks[task]))
        psi = c.psi
        if sf:  # (SFQL-h's slots before H stay zero, so its first psi starts from zero)
            psi = psi.at[task].set(psi[jnp.maximum(task - 1, 0)])
        first_policies = c.first_policies
        if sweeps:  # the finished task's greedy policy, before its Q is zeroed
            done = jnp.minimum(task - 1, H - 1)
            first_policies = first_policies.at[done].set(jnp.where(
                task - 1 < H, jnp.argmax(c.q, axis=1).astype(jnp.int32), first_policies[done]))
        q = jnp.zeros_like(c.q) if config.method in ("q_restart", "sfql_h") else c.q
        return c.replace(psi=psi, q=q, first_policies=first_policies, task=task, obs=obs,
                         env_state=env_state, key=key)

    def evaluate_first_tasks(c: SFState) -> SFState:
        """psi~ of the first H tasks' policies (``feature_task_sweeps``), once phi~ exists:
        reversed sweeps of tabular TD over their stored transitions, next action pi_j(s'), and
        w_j = e_j (phi~'s coordinate j regresses task j's reward)."""
        data = c.phi_data
        s, s_next = env.obs_to_index(data["obs"]), env.obs_to_index(data["next_obs"])
        a = data["action"]
        if mlp_phi:
            phi = phi_model.apply(c.phi_params, data["obs"], data["next_obs"])  # [rows, H]
        else:
            fit = c.features[s, a]  # [rows, H, 2]
            phi = fit[..., 0] / jnp.maximum(fit[..., 1], 1.0)
        a_next = c.first_policies[:, s_next]  # [H, rows]
        tasks = jnp.arange(H)

        def sweep_row(psi, row):
            nxt = psi[tasks, s_next[row], a_next[:, row]]  # [H, D]
            cur = psi[tasks, s[row], a[row]]
            target = jax.vmap(successor.sf_target, in_axes=(None, 0, None, None, None))(
                phi[row], nxt, data["terminated"][row], config.gamma, config.normalised)
            return psi.at[tasks, s[row], a[row]].add(config.alpha * (target - cur)), None

        order = jnp.tile(jnp.arange(phi_rows - 1, -1, -1), sweeps)
        psi, _ = jax.lax.scan(sweep_row, c.psi, order)
        return c.replace(psi=psi, w=c.w.at[:H].set(jnp.eye(H, D)))

    def psi_delta(psi, i, s, a, phi, s_next, a_next, terminated):
        """The TD step of entry (i, s, a) of the psi tables."""
        target = successor.sf_target(phi, psi[i, s_next, a_next], terminated, config.gamma,
                                     config.normalised)
        return config.alpha * (target - psi[i, s, a])

    def env_step(c: SFState, use_sf: bool) -> tuple[SFState, jax.Array]:
        """One environment step, learning with psi tables (``use_sf``) or a Q table. The two
        are separate traces so that each touches only its own tables: a step that both reads
        and writes a large table may make XLA copy it every step."""
        key, key_explore, key_random, key_tie, key_env = jax.random.split(c.key, 5)
        params = params_for(c.tasks[c.task])
        w = task_w(c)
        s = env.obs_to_index(c.obs)
        greedy = value.random_argmax(jax.random.uniform(key_tie), greedy_q(c, s, w, use_sf),
                                      atol=TIE_ATOL)
        explore = jax.random.uniform(key_explore) < config.epsilon
        a = jnp.where(explore, rng.randint(key_random, (), 0, A), greedy)
        obs, env_state, r, terminated, _, info = env.step(key_env, c.env_state, a, params)
        next_obs = info["final_observation"]
        s_next = env.obs_to_index(next_obs)
        psi, q, features, learned, phi_data = c.psi, c.q, c.features, c.w, c.phi_data
        if table_phi and not use_sf:
            # fit phi~ on the first H tasks: per-task sums and counts of rewards at (s, a)
            # (multi-task least squares with identity weights)
            features = c.features.at[s, a, c.task].add(jnp.stack([r, 1.0]))
        if keep_data and not use_sf:  # keep the transition for the fit at task H
            row = {"obs": c.obs, "next_obs": next_obs, "reward": r}
            if sweeps:
                row |= {"action": a.astype(jnp.int32), "terminated": terminated}
            phi_data = {name: c.phi_data[name].at[c.t].set(value)
                        for name, value in row.items()}
        if use_sf:
            if mlp_phi:
                phi = phi_model.apply(c.phi_params, c.obs, next_obs)
            elif learned_phi:
                fit = c.features[s, a]  # [H, 2]
                phi = fit[:, 0] / jnp.maximum(fit[:, 1], 1.0)
            else:
                phi = info["features"]
        else:
            phi = info["features"] if not learned_phi else None
        if phi is not None:
            w_row = successor.reward_weights_sgd(c.w[c.task], phi, r, config.alpha_w,
                                                 normalised=config.w_step == "nlms")
            learned = c.w.at[c.task].set(w_row)
            w = w_row if config.learn_w else w
        if use_sf:
            # every read of the old table comes before the one write, so XLA updates it in
            # place (a read after a write keeps both versions alive: a full copy per step)
            valid = valid_policies(c)
            a_next = successor.gpi_action(c.psi[:, s_next], w, valid)
            chosen = successor.gpi_policy_index(c.psi[:, s], w, valid)
            w_chosen = learned[chosen] if config.learn_w else c.tasks[chosen]
            a_own = jnp.argmax(c.psi[chosen, s_next] @ w_chosen)
            delta = psi_delta(c.psi, c.task, s, a, phi, s_next, a_next, terminated)
            if config.update_gpi_policy:
                # the followed policy's own TD step; zero when GPI followed the current one
                other = (chosen != c.task).astype(jnp.float32) * psi_delta(
                    c.psi, chosen, s, a, phi, s_next, a_own, terminated)
                rows = jnp.stack([c.task, chosen])
                psi = c.psi.at[rows, s, a].add(jnp.stack([delta, other]))
            else:
                psi = c.psi.at[c.task, s, a].add(delta)
        else:
            cont = 1.0 - terminated.astype(jnp.float32)
            target = r + config.gamma * cont * jnp.max(c.q[s_next])
            q = c.q.at[s, a].add(config.alpha * (target - c.q[s, a]))
        c = c.replace(psi=psi, q=q, features=features, phi_data=phi_data, w=learned, obs=obs,
                      env_state=env_state, t=c.t + 1, key=key)
        return c, r

    def run_steps(c: SFState, use_sf: bool, length: int) -> tuple[SFState, jax.Array]:
        return jax.lax.scan(lambda c, _: env_step(c, use_sf), c, None, length=length)

    def evaluate(c: SFState, key: jax.Array, use_sf: bool) -> jax.Array:
        w = task_w(c)

        def act(key, obs):
            return value.random_argmax(jax.random.uniform(key),
                                       greedy_q(c, env.obs_to_index(obs), w, use_sf), atol=TIE_ATOL)

        return interact.episode_return(env, params_for(c.tasks[c.task]), act, key,
                                       config.eval_episodes, config.eval_max_steps)

    def iteration(c: SFState, use_sf: bool, length: int):
        c, rewards = run_steps(c, use_sf, length)
        key, key_eval = jax.random.split(c.key)
        c = c.replace(key=key)
        return c, rewards.sum(), evaluate(c, key_eval, use_sf)

    def record_period(length: int):
        """One record: ``length`` steps on the current task, then its evaluation."""

        def run(c: SFState):
            if learned_phi:  # Q-learning while phi~ is fitted (the first H tasks), then SFQL
                return jax.lax.cond(c.task < H, lambda c: iteration(c, False, length),
                                    lambda c: iteration(c, True, length), c)
            return iteration(c, sf, length)

        return run

    # records every eval_every steps of a task and at its end: the last may be shorter
    per_task = config.records_per_task
    tail = config.steps_per_task - (per_task - 1) * config.eval_every
    full = record_period(config.eval_every)
    last = full if tail == config.eval_every else record_period(tail)

    def step(c: SFState, index) -> tuple[SFState, dict[str, jax.Array]]:
        task = (c.t // config.steps_per_task).astype(jnp.int32)
        c = jax.lax.cond((c.t % config.steps_per_task == 0) & (c.t > 0),
                         lambda c: start_task(c, task), lambda c: c, c)
        if mlp_phi:  # phi~ is fitted once, before task H's first step (the iteration index is
            # the same in every run of a batch, so this stays a branch under vmap)
            c = jax.lax.cond(index == H * per_task, fit_features, lambda c: c, c)
        if sweeps:  # then the first tasks' policies get their psi~
            c = jax.lax.cond(index == H * per_task, evaluate_first_tasks, lambda c: c, c)
        if last is full:
            c, reward, ret = full(c)
        else:
            c, reward, ret = jax.lax.cond(index % per_task == per_task - 1, last, full, c)
        metrics = {"env_steps": c.t, "task": c.task, "reward": reward, "eval_return": ret}
        if not learned_phi:  # learned features have no true weights to compare with
            metrics["w_error"] = jnp.max(jnp.abs(c.w[c.task] - c.tasks[c.task]))
        return c, metrics

    return TrainLoop(init=init, step=step, num_iterations=config.num_iterations)


def make_train(config: Config):
    """``train(key) -> (SFState, metrics [num_tasks * ceil(steps_per_task / eval_every)])``."""
    return as_train(make_loop(config))


def policy(state: SFState, config: Config):
    """The greedy policy on the current task (GPI for SFQL) as a pure function ``(key,
    obs [B, ...]) -> action [B]`` (the key is unused)."""
    env, _ = envs.make(config.env, config.env_params)
    slots = jnp.arange(config.num_tasks)
    H = config.feature_tasks

    def act(obs: jax.Array) -> jax.Array:
        s = env.obs_to_index(obs.astype(jnp.int32))
        q = state.q[s] if config.method != "sfql" else None
        if config.method in ("sfql", "sfql_h"):
            w = state.w[state.task] if config.learn_w else state.tasks[state.task]
            valid = slots <= state.task
            if config.method == "sfql_h" and not config.feature_task_sweeps:
                valid = valid & (slots >= H)
            gpi = successor.gpi_q(state.psi[:, s], w, valid)
            q = gpi if q is None else jnp.where(state.task >= H, gpi, q)
        return jnp.argmax(q).astype(jnp.int32)

    return lambda key, obs: jax.vmap(act)(obs)
