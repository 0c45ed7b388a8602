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

``method`` switches to the paper's baselines, tabular Q-learning restarted at each task
(``"q_restart"``) or continuing across tasks (``"q_continue"``), on the same tasks and keys.

A run is ``num_tasks * steps_per_task`` environment steps; every ``eval_every`` steps the metrics
record ``reward`` (collected online since the last record), ``task`` and ``eval_return`` (the
greedy policy on the current task, as the learned w sees it). ``curve`` plots the reward
collected. ``alpha``, ``alpha_w``, ``gamma`` and ``epsilon`` are pytree leaves (vmappable).

Memory: SFQL's tables hold ``num_tasks * S * A * N`` floats: on the 13 x 13 four-room grid
(S = 169 * 2^12) that is 886 MB per seed for 20 tasks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from purembrl import envs, successor
from purembrl.config import check, check_choice, check_int, static
from purembrl.loop import TrainLoop, as_train

ENVS = ("FourRoomObjects", "FourRoomObjects-small")
METHODS = ("sfql", "q_restart", "q_continue")


@struct.dataclass
class Config:
    """SFQL and its Q-learning baselines; defaults are the paper's four-room settings.

    Attributes:
      env: one of ``ENVS`` (tabular, with ``num_features`` and ``task_weights``).
      method: ``"sfql"`` (SF + GPI), ``"q_restart"`` or ``"q_continue"`` (Q-learning baselines).
      num_tasks: tasks in sequence. steps_per_task: environment steps on each task.
      eval_every: steps between records (a divisor of ``steps_per_task``).
      alpha: step size of the psi (or Q) tables. alpha_w: SGD step size of the reward weights.
      gamma: discount (0.95 in the paper). epsilon: exploration (0.15 in the paper).
      update_gpi_policy: SFQL also updates the psi of the policy GPI chose (the paper's SFQL).
      learn_w: learn w from rewards (True, the paper's setting) or read it from the task.
      normalised: the library's psi convention (see ``purembrl.successor``) or Barreto's.
      eval_episodes: greedy evaluation episodes per record; eval_max_steps: their length cap.
    """

    env: str = static("FourRoomObjects")
    method: str = static("sfql")
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
        check_choice("env", self.env, ENVS)
        check_choice("method", self.method, METHODS)
        check_int("num_tasks", self.num_tasks, 1)
        check_int("steps_per_task", self.steps_per_task, 1)
        check_int("eval_every", self.eval_every, 1)
        if isinstance(self.eval_every, int) and self.steps_per_task % self.eval_every:
            raise ValueError(f"eval_every={self.eval_every} is invalid: allowed a divisor of "
                             f"steps_per_task={self.steps_per_task}")
        check("alpha", self.alpha, lambda v: (v > 0) & (v <= 1), "0 < alpha <= 1")
        check("alpha_w", self.alpha_w, lambda v: (v > 0) & (v <= 1), "0 < alpha_w <= 1")
        check("gamma", self.gamma, lambda v: (v >= 0) & (v < 1), "0 <= gamma < 1")
        check("epsilon", self.epsilon, lambda v: (v >= 0) & (v <= 1), "0 <= epsilon <= 1")
        check_int("eval_episodes", self.eval_episodes, 1)
        check_int("eval_max_steps", self.eval_max_steps, 1)

    @property
    def num_iterations(self) -> int:
        return self.num_tasks * self.steps_per_task // self.eval_every


def curve(config: Config) -> tuple[str, str]:
    return ("env_steps", "reward")


@struct.dataclass
class SFState:
    """A transfer run. T tasks, S states, A actions, N features.

    Attributes:
      psi: ``[T, S, A, N]`` successor features per task's policy (SFQL) or ``[1, 1, 1, N]``.
      q: ``[S, A]`` action values (Q-learning baselines) or ``[1, 1]``.
      w: ``[T, N]`` learned reward weights per task; tasks: ``[T, N]`` the true ones.
      task: index of the current task. obs, env_state: the environment now.
      t: environment steps so far. key: the run's PRNG key.
    """

    psi: jax.Array
    q: jax.Array
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


def argmax_random_ties(key: jax.Array, values: jax.Array) -> jax.Array:
    """argmax with ties broken uniformly at random (all-zero tables at the start of learning)."""
    top = values >= jnp.max(values) - 1e-9
    return jnp.argmax(jnp.where(top, jax.random.uniform(key, values.shape), -1.0))


def make_loop(config: Config) -> TrainLoop:
    env, base_params = envs.make(config.env)
    S, A, N = env.num_states, env.num_actions, env.num_features
    T = config.num_tasks
    sfql = config.method == "sfql"
    slots = jnp.arange(T)

    def params_for(weights):
        return base_params.replace(object_weights=weights[:-1], goal_reward=weights[-1])

    def greedy_q(c: SFState, s: jax.Array, w: jax.Array) -> jax.Array:
        """``[A]`` values the behaviour and evaluation policies are greedy for."""
        if sfql:
            return successor.gpi_q(c.psi[:, s], w, slots <= c.task)
        return c.q[s]

    def init(key: jax.Array) -> SFState:
        key_tasks, key_reset, key = jax.random.split(key, 3)
        tasks = sample_tasks(key_tasks, T, N - 1)
        obs, env_state = env.reset(key_reset, params_for(tasks[0]))
        return SFState(
            psi=jnp.zeros((T, S, A, N) if sfql else (1, 1, 1, N)),
            q=jnp.zeros((1, 1) if sfql else (S, A)),
            w=jnp.zeros((T, N)), tasks=tasks, task=jnp.zeros((), jnp.int32), obs=obs,
            env_state=env_state, t=jnp.zeros((), jnp.int32), key=key)

    def start_task(c: SFState, task: jax.Array) -> SFState:
        """New task: fresh episode; psi_t from psi_{t-1} (SFQL); Q zeroed (``q_restart``)."""
        key, key_reset = jax.random.split(c.key)
        obs, env_state = env.reset(key_reset, params_for(c.tasks[task]))
        psi = c.psi
        if sfql:
            psi = psi.at[task].set(psi[jnp.maximum(task - 1, 0)])
        q = jnp.zeros_like(c.q) if config.method == "q_restart" else c.q
        return c.replace(psi=psi, q=q, task=task, obs=obs, env_state=env_state, key=key)

    def psi_delta(psi, i, s, a, phi, s_next, a_next, terminated):
        """The TD step of entry (i, s, a) of the psi tables."""
        target = successor.sf_target(phi, psi[i, s_next, a_next], terminated, config.gamma,
                                     config.normalised)
        return config.alpha * (target - psi[i, s, a])

    def env_step(c: SFState, _) -> tuple[SFState, jax.Array]:
        key, key_explore, key_random, key_tie, key_env = jax.random.split(c.key, 5)
        params = params_for(c.tasks[c.task])
        w = c.w[c.task] if config.learn_w else c.tasks[c.task]
        s = env.obs_to_index(c.obs)
        greedy = argmax_random_ties(key_tie, greedy_q(c, s, w))
        explore = jax.random.uniform(key_explore) < config.epsilon
        a = jnp.where(explore, jax.random.randint(key_random, (), 0, A), greedy)
        obs, env_state, r, terminated, _, info = env.step(key_env, c.env_state, a, params)
        phi = info["features"]
        s_next = env.obs_to_index(info["final_observation"])
        w_row = successor.reward_weights_sgd(c.w[c.task], phi, r, config.alpha_w)
        learned = c.w.at[c.task].set(w_row)
        w = w_row if config.learn_w else w
        if sfql:
            # every read of the old table comes before the one write, so XLA updates it in
            # place (a read after a write keeps both versions alive: a full copy per step)
            valid = slots <= c.task
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
            q = c.q
        else:
            psi = c.psi
            cont = 1.0 - terminated.astype(jnp.float32)
            target = r + config.gamma * cont * jnp.max(c.q[s_next])
            q = c.q.at[s, a].add(config.alpha * (target - c.q[s, a]))
        c = c.replace(psi=psi, q=q, w=learned, obs=obs, env_state=env_state, t=c.t + 1, key=key)
        return c, r

    def evaluate(c: SFState, key: jax.Array) -> jax.Array:
        params = params_for(c.tasks[c.task])
        w = c.w[c.task] if config.learn_w else c.tasks[c.task]

        def episode(key):
            key_reset, key_run = jax.random.split(key)
            obs, env_state = env.reset(key_reset, params)

            def body(x):
                obs, env_state, key, length, _, ret = x
                key, key_tie, key_env = jax.random.split(key, 3)
                a = argmax_random_ties(key_tie, greedy_q(c, env.obs_to_index(obs), w))
                obs, env_state, r, term, trunc, _ = env.step(key_env, env_state, a, params)
                return obs, env_state, key, length + 1, term | trunc, ret + r

            init = (obs, env_state, key_run, jnp.zeros((), jnp.int32), jnp.zeros((), bool),
                    jnp.zeros(()))
            *_, ret = jax.lax.while_loop(
                lambda x: ~x[4] & (x[3] < config.eval_max_steps), body, init)
            return ret

        return jax.vmap(episode)(jax.random.split(key, config.eval_episodes)).mean()

    def step(c: SFState) -> tuple[SFState, dict[str, jax.Array]]:
        task = (c.t // config.steps_per_task).astype(jnp.int32)
        c = jax.lax.cond((c.t % config.steps_per_task == 0) & (c.t > 0),
                         lambda c: start_task(c, task), lambda c: c, c)
        c, rewards = jax.lax.scan(env_step, c, None, length=config.eval_every)
        key, key_eval = jax.random.split(c.key)
        c = c.replace(key=key)
        w_error = jnp.max(jnp.abs(c.w[c.task] - c.tasks[c.task]))
        return c, {"env_steps": c.t, "task": c.task, "reward": rewards.sum(),
                   "eval_return": evaluate(c, key_eval), "w_error": w_error}

    return TrainLoop(init=init, step=step, num_iterations=config.num_iterations)


def make_train(config: Config):
    """``train(key) -> (SFState, metrics [num_tasks * steps_per_task / eval_every])``."""
    return as_train(make_loop(config))


def policy(state: SFState, config: Config):
    """The greedy policy on the current task: ``obs -> action`` (GPI for SFQL)."""
    env, _ = envs.make(config.env)
    slots = jnp.arange(config.num_tasks)

    def act(obs: jax.Array) -> jax.Array:
        s = env.obs_to_index(obs.astype(jnp.int32))
        if config.method == "sfql":
            w = state.w[state.task] if config.learn_w else state.tasks[state.task]
            return successor.gpi_action(state.psi[:, s], w, slots <= state.task)
        return jnp.argmax(state.q[s]).astype(jnp.int32)

    return act
