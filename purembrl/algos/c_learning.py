"""Goal-conditioned C-learning (Eysenbach, Salakhutdinov & Levine 2021), and contrastive RL.

The critic is a classifier of futures: ``C(s, a, g)`` says whether g is a future state of
(s, a) or a state from a marginal, so ``C / (1 - C) = p_fut^pi(g | s, a) / p(g)`` and its logit
is the log density ratio. The actor maximises it: ``a = argmax_a log p_fut^pi(g | s, a)`` up to
a term that does not depend on a. No reward is used.

Each round collects ``episodes_per_round`` fixed-length episodes (fresh goals, the stochastic
policy; ``initial_random_steps`` of uniformly random episodes first) into a trajectory buffer
``[capacity_episodes, episode_length]``, then takes ``updates_per_round`` gradient steps on
minibatches of transitions (s, a, s') with relabelled goals:

* ``critic="td"`` (C-learning, off-policy, ``classifier.td_classifier_loss``): twin classifier
  critics; the next state is the positive (weight 1 - g); a goal drawn from the relabelling
  mixture (``future_prob`` a future state of the same episode at a Geometric(1 - g) offset,
  else a random state of the buffer) gets the bootstrapped weight from the target critics at
  (s', a' ~ pi(s', g), g) (minimum over the two). Polyak-averaged targets.
* ``critic="infonce"`` (contrastive RL, Eysenbach et al. 2022): ``logit = phi(s, a) . psi(g)``
  with future-state goals, the other goals of the minibatch as negatives
  (``classifier.infonce_loss``). Monte Carlo, so on-policy in spirit. Its softmax leaves a free
  additive term per (s, a), which the actor then climbs too; ``critic="nce"`` is the paper's
  binary NCE variant (``classifier.binary_nce_loss``: the same representations, every pair of
  the batch a sigmoid classification), whose logit is the log density ratio up to a constant.

* ``critic="her"``, the baseline without a classifier: goal-conditioned SAC (DQN-style argmax
  for discrete actions) with hindsight relabelling (Andrychowicz et al. 2017): twin Q(s, a, g)
  regressed on ``r + g (min Q'(s', a', g) - alpha log pi(a'|s', g))``, r = 1 when s' reaches g,
  goals relabelled to a future state (``future_prob``) or else the episode's own goal.

The actor (squashed Gaussian) minimises ``alpha log pi(a|s, g) - min_i logit_i(s, a, g)`` on
goals drawn from the same mixture, with a fixed entropy coefficient ``alpha``. Evaluation runs
the mean action on ``eval_episodes`` fresh goals: ``success_rate`` (the goal was reached at
some step), ``final_distance`` and ``eval_return`` (steps spent within the success radius).
``actor_lr``, ``critic_lr``, ``gamma``, ``tau`` and ``alpha`` are pytree leaves.
"""

from __future__ import annotations

import purembrl._deferred_imports  # noqa: F401  (first: defers gymnax's plotting imports)

# isort: split
import jax
import jax.numpy as jnp
import optax
from flax import struct
from gymnax.environments import spaces

from purembrl import classifier, envs, relabel, rng, value
from purembrl.config import (
    Presets,
    check,
    check_choice,
    check_int,
    check_sizes,
    check_types,
    static,
)
from purembrl.learners import squashed_gaussian
from purembrl.loop import TrainLoop, as_train
from purembrl.networks import MLP, GaussianActor
from purembrl.relabel import Episodes

ENVS = ("PointMaze-Open", "PointMaze-UMaze", "PointMaze-FourRooms", "FourRooms-goal")
CRITICS = ("td", "infonce", "nce", "her")


@struct.dataclass
class Config(Presets):
    """C-learning settings (defaults: a small point-maze run; the paper's are larger).

    Attributes:
      env: a goal-conditioned environment (``ENVS``).
      env_params: environment parameters in place of the env's defaults, ``"NAME=VALUE,..."``
        (gymnax's ``EnvParams`` fields, e.g. ``"max_speed=10"``; ``""``: the defaults).
      critic: ``"td"`` (C-learning), ``"infonce"`` or ``"nce"`` (contrastive RL with the
        softmax or the binary NCE loss) or ``"her"`` (the baseline: goal-conditioned SAC /
        DQN on the hindsight success reward).
      total_steps: environment steps in the run, the random ``initial_random_steps`` included
        (whole rounds after them).
      eval_every: environment steps between evaluations (whole rounds), with one more at the
        end when it does not divide the budget.
      initial_random_steps: uniformly random steps collected first (whole episodes).
      episode_length: steps per episode (fixed; replaces the env's limit).
      episodes_per_round: episodes collected in parallel per round.
      updates_per_round: gradient steps after each round.
      batch_size: transitions per step. capacity_episodes: episodes the buffer holds.
      hidden_sizes: actor and critic layers. repr_dim: contrastive representation size.
      actor_lr, critic_lr: Adam step sizes. gamma: discount of the future distribution.
      tau: Polyak rate of the target critics. alpha: entropy coefficient of the actor.
      epsilon: exploration of the discrete (argmax) policy while collecting.
      future_prob: share of relabelled goals that are future states (else random states).
      max_weight: optional clip of the TD weight w (None: unbiased).
      eval_episodes: fresh-goal episodes per evaluation.
    """

    env: str = static("PointMaze-Open")
    env_params: str = static("")
    critic: str = static("td")
    total_steps: int = static(5_000)
    eval_every: int = static(200)
    initial_random_steps: int = static(1_000)
    episode_length: int = static(50)
    episodes_per_round: int = static(4)
    updates_per_round: int = static(100)
    batch_size: int = static(256)
    capacity_episodes: int = static(1000)
    hidden_sizes: tuple[int, ...] = static((128, 128))
    repr_dim: int = static(32)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.9
    tau: float = 0.01
    alpha: float = 0.01
    epsilon: float = 0.1
    future_prob: float = 0.5
    max_weight: float | None = static(None)
    eval_episodes: int = static(20)

    def __post_init__(self):
        check_types(self)
        check_choice("env", self.env, ENVS)
        envs.parse_params(self.env_params)
        check_choice("critic", self.critic, CRITICS)
        for name in ("total_steps", "eval_every", "initial_random_steps", "episode_length",
                     "episodes_per_round", "updates_per_round", "batch_size",
                     "capacity_episodes", "repr_dim", "eval_episodes"):
            check_int(name, getattr(self, name), 1)
        check_sizes("hidden_sizes", self.hidden_sizes)
        warmup = self.initial_random_steps
        if isinstance(warmup, int) and isinstance(self.episode_length, int):
            if warmup % self.episode_length:
                raise ValueError(f"initial_random_steps={warmup} is invalid: allowed a "
                                 f"multiple of episode_length={self.episode_length}")
            if warmup // self.episode_length > self.capacity_episodes:
                raise ValueError(f"initial_random_steps={warmup} is invalid: allowed at "
                                 f"most capacity_episodes x episode_length = "
                                 f"{self.capacity_episodes * self.episode_length}")
            round_steps = self.episodes_per_round * self.episode_length
            if self.eval_every % round_steps:
                raise ValueError(f"eval_every={self.eval_every} is invalid: allowed a multiple "
                                 f"of episodes_per_round x episode_length = {round_steps}")
            trained = self.total_steps - warmup
            if trained < round_steps or trained % round_steps:
                raise ValueError(f"total_steps={self.total_steps} is invalid: allowed "
                                 f"initial_random_steps ({warmup}) plus a positive multiple of "
                                 f"episodes_per_round x episode_length = {round_steps} (the "
                                 "last evaluation period may be shorter than eval_every)")
        check("actor_lr", self.actor_lr, lambda v: v > 0, "actor_lr > 0")
        check("critic_lr", self.critic_lr, lambda v: v > 0, "critic_lr > 0")
        check("gamma", self.gamma, lambda v: (v > 0) & (v < 1), "0 < gamma < 1")
        check("tau", self.tau, lambda v: (v > 0) & (v <= 1), "0 < tau <= 1")
        check("alpha", self.alpha, lambda v: v >= 0, "alpha >= 0")
        check("epsilon", self.epsilon, lambda v: (v >= 0) & (v <= 1), "0 <= epsilon <= 1")
        check("future_prob", self.future_prob, lambda v: (v >= 0) & (v <= 1),
              "0 <= future_prob <= 1")
        if self.max_weight is not None:
            check("max_weight", self.max_weight, lambda v: v > 0, "max_weight > 0 or None")

    @property
    def num_iterations(self) -> int:
        return -(-(self.total_steps - self.initial_random_steps) // self.eval_every)

    @property
    def rounds_per_eval(self) -> int:
        return self.eval_every // (self.episodes_per_round * self.episode_length)


def curve(config: Config) -> tuple[str, str]:
    return ("env_steps", "success_rate")


@struct.dataclass
class CState:
    actor: object
    critic: object
    target_critic: object
    actor_opt: object
    critic_opt: object
    episodes: Episodes
    num_episodes: jax.Array  # episodes ever stored
    env_steps: jax.Array
    key: jax.Array


def critics(config: Config, discrete: bool, A: int):
    """The critic as functions of its parameters, shared by training and ``policy``:
    ``(critic_net, action_input, logits, pair_logits, greedy)``; ``critic_net`` is the twin
    head of "td" / "her" (None for InfoNCE, whose parameters are ``{"sa", "g"}``)."""
    td = config.critic in ("td", "her")  # twin heads on (s, a, g); "her" reads them as Q
    critic_net = sa_net = g_net = None
    if td:  # twin logits of C(s, a, g): one per action for discrete actions
        critic_net = MLP(config.hidden_sizes, 2 * A if discrete else 2)
    else:
        sa_net = MLP(config.hidden_sizes, config.repr_dim)
        g_net = MLP(config.hidden_sizes, config.repr_dim)

    def action_input(action):
        return jax.nn.one_hot(action, A) if discrete else action

    def all_actions(params, state, goal):
        """Discrete TD heads: ``[B, 2, A]`` logits of every action in one pass."""
        return critic_net.apply(params, jnp.concatenate([state, goal], -1)).reshape(-1, 2, A)

    def logits(params, state, action, goal):
        """``[2, B]`` classifier logits (TD) or the ``[B, B]`` InfoNCE matrix."""
        if td:
            if discrete:
                out = all_actions(params, state, goal)
                return jnp.take_along_axis(out, action[:, None, None], axis=2)[..., 0].T
            return critic_net.apply(params, jnp.concatenate([state, action, goal], -1)).T
        rep_sa = sa_net.apply(params["sa"], jnp.concatenate([state, action_input(action)], -1))
        return rep_sa @ g_net.apply(params["g"], goal).T

    def pair_logits(params, state, action, goal):
        """``[B]`` logits of matched (s, a, g) rows (the lower twin for TD)."""
        if td:
            return logits(params, state, action, goal).min(0)
        rep_sa = sa_net.apply(params["sa"], jnp.concatenate([state, action_input(action)], -1))
        return jnp.sum(rep_sa * g_net.apply(params["g"], goal), -1)

    def greedy(params, state, goal):
        """Discrete actions: ``argmax_a`` of the classifier's logit, ``[B]``."""
        if td:
            per_action = all_actions(params, state, goal).min(1)  # [B, A]
        else:
            per_action = jax.vmap(
                lambda a: pair_logits(params, state, jnp.full(state.shape[0], a), goal),
                out_axes=1)(jnp.arange(A))
        return jnp.argmax(per_action, axis=-1).astype(jnp.int32)

    return critic_net, action_input, logits, pair_logits, greedy


def make_loop(config: Config) -> TrainLoop:
    env, env_params = envs.make(config.env, config.env_params)
    env_params = env_params.replace(max_steps_in_episode=config.episode_length)
    L = config.episode_length
    G = 2  # goal (and achieved-state) dimension of the point maze and the grid
    space = env.action_space(env_params)
    discrete = isinstance(space, spaces.Discrete)
    A = int(space.n) if discrete else space.shape[0]  # actions, or the action dimension
    action_shape = () if discrete else (A,)
    her = config.critic == "her"
    actor_net = GaussianActor(config.hidden_sizes, A)
    critic_net, action_input, logits, pair_logits, greedy = critics(config, discrete, A)
    td = critic_net is not None
    if not td:
        sa_net = MLP(config.hidden_sizes, config.repr_dim)
        g_net = MLP(config.hidden_sizes, config.repr_dim)
    actor_opt = optax.adam(config.actor_lr)
    critic_opt = optax.adam(config.critic_lr)

    def policy_dist(params, state, goal):
        mean, log_std = actor_net.apply(params, jnp.concatenate([state, goal], -1))
        return squashed_gaussian(mean, log_std)

    def act(c: CState, state, goal, key, mode: str):
        """Actions ``[B, ...]``: ``mode`` "random", "explore" (sampled / epsilon-greedy) or
        "greedy" (mean action / argmax)."""
        B = state.shape[0]
        key_random, key_explore = jax.random.split(key)
        if discrete:
            random = rng.randint(key_random, (B,), 0, A)
            if mode == "random":
                return random
            best = greedy(c.critic, state, goal)
            if mode == "greedy":
                return best
            explore = jax.random.uniform(key_explore, (B,)) < config.epsilon
            return jnp.where(explore, random, best)
        if mode == "random":
            return jax.random.uniform(key_random, (B, A), minval=-1, maxval=1)
        if mode == "greedy":
            return jnp.tanh(actor_net.apply(c.actor, jnp.concatenate([state, goal], -1))[0])
        return policy_dist(c.actor, state, goal).sample(seed=key_explore)

    def collect(c: CState, key, num, mode):
        """``num`` fresh episodes in parallel: an ``Episodes`` of ``[num, L, ...]``."""
        key_reset, key_run = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(key_reset, num), env_params)

        def body(carry, k):
            obs, env_state = carry
            key_act, key_env = jax.random.split(k)
            state, goal = env.achieved_goal(obs), env.desired_goal(obs)
            action = act(c, state, goal, key_act, mode)
            nobs, env_state, *_ , info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key_env, num), env_state, action, env_params)
            next_state = env.achieved_goal(info["final_observation"])
            return (nobs, env_state), Episodes(state, action, next_state, goal)

        _, eps = jax.lax.scan(body, (obs, env_state), jax.random.split(key_run, L))
        return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), eps)

    def store(c: CState, new: Episodes) -> CState:
        n = new.state.shape[0]
        return c.replace(episodes=relabel.add(c.episodes, c.num_episodes, new),
                         num_episodes=c.num_episodes + n, env_steps=c.env_steps + n * L)

    def init(key: jax.Array) -> CState:
        key_a, key_c, key_data, key = jax.random.split(key, 4)
        state0, goal0 = jnp.zeros((1, G)), jnp.zeros((1, G))
        action0 = jnp.zeros((1, *action_shape), jnp.int32 if discrete else jnp.float32)
        actor = {} if discrete else actor_net.init(key_a, jnp.zeros((1, 2 * G)))
        if td:
            critic = critic_net.init(key_c, jnp.zeros((1, 2 * G + (0 if discrete else A))))
        else:
            key_sa, key_g = jax.random.split(key_c)
            critic = {"sa": sa_net.init(key_sa, jnp.concatenate(
                          [state0, action_input(action0)], -1)),
                      "g": g_net.init(key_g, goal0)}
        empty = relabel.init(config.capacity_episodes, L, G, action_shape, action0.dtype)
        c = CState(actor=actor, critic=critic, target_critic=critic,
                   actor_opt=actor_opt.init(actor), critic_opt=critic_opt.init(critic),
                   episodes=empty, num_episodes=jnp.zeros((), jnp.int32),
                   env_steps=jnp.zeros((), jnp.int32), key=key)
        return store(c, collect(c, key_data, config.initial_random_steps // L, "random"))

    strategy = "her" if her else "mixture" if td else "future"

    def sample(c: CState, key: jax.Array):
        """Transitions with relabelled goals (``relabel.sample``): a future state of the same
        episode, else the episode's goal (HER) or a random stored state (C-learning); the
        contrastive critics take future states only."""
        return relabel.sample(c.episodes, c.num_episodes, key, config.batch_size, config.gamma,
                              config.future_prob, strategy)

    def critic_loss(params, target_params, actor, batch, key):
        state, action, next_state, goal = batch
        if not td:
            contrastive = (classifier.infonce_loss if config.critic == "infonce"
                           else classifier.binary_nce_loss)
            return contrastive(logits(params, state, action, goal))
        if discrete:  # a' = argmax of the online classifier, valued by the target one
            next_action = greedy(jax.lax.stop_gradient(params), next_state, goal)
            next_log_prob = jnp.zeros(next_state.shape[0])
        else:
            next_action, next_log_prob = policy_dist(actor, next_state, goal).sample_and_log_prob(
                seed=key)
        if her:
            reward = env.goal_reached(next_state, goal, env_params).astype(jnp.float32)
            next_q = pair_logits(target_params, next_state, next_action, goal)
            soft = next_q - (0.0 if discrete else config.alpha) * next_log_prob
            target = jax.lax.stop_gradient(reward + config.gamma * soft)
            q = logits(params, state, action, goal)  # [2, B]
            return jnp.mean(jnp.sum(0.5 * (q - target[None]) ** 2, axis=0))
        next_goal_logit = pair_logits(target_params, next_state, next_action, goal)
        next_logits = logits(params, state, action, next_state)  # [2, B]
        goal_logits = logits(params, state, action, goal)
        per = jax.vmap(jax.vmap(
            lambda n, g, w: classifier.td_classifier_loss(n, g, w, config.gamma,
                                                          config.max_weight),
            in_axes=(0, 0, 0)), in_axes=(0, 0, None))(next_logits, goal_logits,
                                                      next_goal_logit)
        return per.sum(0).mean()

    def actor_loss(actor, critic, batch, key):
        state, _, _, goal = batch
        dist = policy_dist(actor, state, goal)
        action, log_prob = dist.sample_and_log_prob(seed=key)
        return jnp.mean(config.alpha * log_prob - pair_logits(critic, state, action, goal))

    def update(c: CState, key: jax.Array):
        key_batch, key_critic, key_actor = jax.random.split(key, 3)
        batch = sample(c, key_batch)
        c_loss, c_grads = jax.value_and_grad(critic_loss)(c.critic, c.target_critic, c.actor,
                                                          batch, key_critic)
        updates, critic_state = critic_opt.update(c_grads, c.critic_opt, c.critic)
        critic = optax.apply_updates(c.critic, updates)
        if discrete:  # the policy is the classifier's argmax: no actor
            a_loss, actor, actor_state = jnp.zeros(()), c.actor, c.actor_opt
        else:
            a_loss, a_grads = jax.value_and_grad(actor_loss)(c.actor, critic, batch, key_actor)
            updates, actor_state = actor_opt.update(a_grads, c.actor_opt, c.actor)
            actor = optax.apply_updates(c.actor, updates)
        target = value.polyak(c.target_critic, critic, config.tau)
        c = c.replace(actor=actor, critic=critic, target_critic=target, actor_opt=actor_state,
                      critic_opt=critic_state)
        return c, {"critic_loss": c_loss, "actor_loss": a_loss}

    def evaluate(c: CState, key):
        key_reset, key_run = jax.random.split(key)
        n = config.eval_episodes
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(key_reset, n), env_params)

        def body(carry, k):
            obs, env_state, reached, steps_in = carry
            key_act, key_env = jax.random.split(k)
            action = act(c, env.achieved_goal(obs), env.desired_goal(obs), key_act, "greedy")
            obs, env_state, reward, *_ , info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key_env, n), env_state, action, env_params)
            return (obs, env_state, reached | info["success"], steps_in + reward), \
                info["distance"]

        init = (obs, env_state, jnp.zeros(n, bool), jnp.zeros(n))
        (_, _, reached, steps_in), dist = jax.lax.scan(body, init, jax.random.split(key_run, L))
        return reached.mean(), dist[-1].mean(), steps_in.mean()

    def round_(c: CState, key: jax.Array):
        """Collect ``episodes_per_round`` episodes, then ``updates_per_round`` updates."""
        key_collect, key_update = jax.random.split(key)
        c = store(c, collect(c, key_collect, config.episodes_per_round, "explore"))
        return jax.lax.scan(update, c, jax.random.split(key_update, config.updates_per_round))

    def period(rounds: int):
        """``rounds`` rounds, then one evaluation."""
        def step(c: CState, iteration):
            key, key_rounds, key_eval = jax.random.split(c.key, 3)
            c, info = jax.lax.scan(round_, c.replace(key=key),
                                   jax.random.split(key_rounds, rounds))
            success, distance, ret = evaluate(c, key_eval)
            return c, {"env_steps": c.env_steps, "eval_return": ret, "success_rate": success,
                       "final_distance": distance, **jax.tree.map(jnp.mean, info)}

        return step

    # evaluations every eval_every steps and at the end: the last period may be shorter
    n, round_steps = config.num_iterations, config.episodes_per_round * config.episode_length
    tail = (config.total_steps - config.initial_random_steps) // round_steps
    tail -= (n - 1) * config.rounds_per_eval
    full = period(config.rounds_per_eval)
    if tail == config.rounds_per_eval:
        return TrainLoop(init=init, step=full, num_iterations=n)
    last = period(tail)
    return TrainLoop(init=init, num_iterations=n, step=lambda c, iteration: jax.lax.cond(
        iteration == n - 1, last, full, c, iteration))


def make_train(config: Config):
    """``train(key) -> (CState, metrics [num_iterations])``."""
    return as_train(make_loop(config))


def policy(state: CState, config: Config):
    """The greedy goal-conditioned policy as a pure function ``(key, obs [B, 4]) -> action
    [B, ...]`` (the actor's mean action, or the classifier's argmax for discrete actions; the
    key is unused)."""
    env, env_params = envs.make(config.env, config.env_params)
    space = env.action_space(env_params)
    if isinstance(space, spaces.Discrete):
        greedy = critics(config, True, int(space.n))[-1]
        return lambda key, obs: greedy(state.critic, env.achieved_goal(obs),
                                       env.desired_goal(obs))
    actor_net = GaussianActor(config.hidden_sizes, space.shape[0])
    return lambda key, obs: jnp.tanh(actor_net.apply(state.actor, obs)[0])
