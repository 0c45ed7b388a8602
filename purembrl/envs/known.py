"""Reward and termination functions of gymnax classic-control tasks (and the termination of
Brax's Hopper and inverted pendulum, and of gymnasium's MuJoCo InvertedPendulum, Hopper,
Walker2d and Ant), in observation space, and their true dynamics as a model step.

MBPO (Janner et al. 2019) learns the reward but uses known termination functions for its tasks;
a user who knows them should not have to learn them (``register`` adds a user's own, for a
registered environment). Each function is batched:
``fn(obs [B, d], action [B, ...], next_obs [B, d]) -> [B]`` and matches gymnax's ``step_env``
(tests check it against the environment).

``true_model_step(env)`` is the environment itself as a ``rollout.ModelStep``, for tasks whose
state can be read back from the observation: plugged in where a learned model would go, it
separates a learner's failures from the model's errors (a diagnostic, not a model-based
method).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from gymnax.environments.classic_control import acrobot, cartpole, pendulum

from purembrl import envs

StepFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def pendulum_reward(obs, action, next_obs):
    """-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2) of the state *before* the step; obs is
    [cos theta, sin theta, theta_dot], u the torque clipped to [-2, 2]."""
    theta = jnp.arctan2(obs[:, 1], obs[:, 0])
    torque = jnp.clip(action.reshape(obs.shape[0], -1)[:, 0], -2.0, 2.0)
    return -(theta ** 2 + 0.1 * obs[:, 2] ** 2 + 0.001 * torque ** 2)


def never_terminates(obs, action, next_obs):
    """``False`` for every transition (Pendulum: only the time limit ends an episode)."""
    return jnp.zeros(obs.shape[0], bool)


def cartpole_terminated(obs, action, next_obs):
    """|x| > 2.4 or |theta| > 12 degrees after the step; obs is [x, x_dot, theta, theta_dot]."""
    return (jnp.abs(next_obs[:, 0]) > 2.4) | (jnp.abs(next_obs[:, 2]) > 12 * 2 * jnp.pi / 360)


def cartpole_reward(obs, action, next_obs):
    """1 for every step taken from a non-terminal state (all stored transitions)."""
    return jnp.ones(obs.shape[0])


def acrobot_terminated(obs, action, next_obs):
    """The tip above the bar, -cos(t1) - cos(t1 + t2) > 1, after the step; obs is [cos t1,
    sin t1, cos t2, sin t2, t1_dot, t2_dot] (gymnax's and gymnasium's Acrobot-v1)."""
    c1, s1, c2, s2 = (next_obs[:, i] for i in range(4))
    return -c1 - (c1 * c2 - s1 * s2) > 1.0


def acrobot_reward(obs, action, next_obs):
    """-1 for every step that does not end at the goal, 0 for the one that does."""
    return -1.0 * (1.0 - acrobot_terminated(obs, action, next_obs).astype(jnp.float32))


def brax_hopper_terminated(obs, action, next_obs):
    """Hopper falls, in Brax or gymnasium's MuJoCo Hopper v4/v5 (MBPO's Hopper termination
    function, Janner et al. 2019): after the
    step the torso height ``next_obs[0]`` is at most 0.7, the torso angle ``next_obs[1]`` is
    outside (-0.2, 0.2), or any of ``next_obs[1:]`` is outside (-100, 100), or a value is NaN.
    The observation is [height, angle, 3 joint angles, 6 velocities clipped to [-10, 10]], so
    it equals Brax's ``done`` except for an unclipped velocity beyond 100, which the observation
    cannot show."""
    height, angle = next_obs[:, 0], next_obs[:, 1]
    healthy = ((height > 0.7) & (angle > -0.2) & (angle < 0.2)
               & jnp.all((next_obs[:, 1:] > -100.0) & (next_obs[:, 1:] < 100.0), axis=-1))
    return ~healthy


def brax_inverted_pendulum_terminated(obs, action, next_obs):
    """Brax's inverted pendulum falls: |pole angle| = |next_obs[1]| > 0.2 after the step (the
    observation is [cart position, pole angle, their velocities])."""
    return jnp.abs(next_obs[:, 1]) > 0.2


def inverted_pendulum_terminated(obs, action, next_obs):
    """MuJoCo's InvertedPendulum (gymnasium v4/v5) falls: after the step the pole angle
    ``next_obs[:, 1]`` exceeds 0.2 in magnitude or a value is not finite (MBPO's function)."""
    return ~(jnp.all(jnp.isfinite(next_obs), axis=-1) & (jnp.abs(next_obs[:, 1]) <= 0.2))


def walker2d_terminated(obs, action, next_obs):
    """MuJoCo's Walker2d (gymnasium v4/v5) falls: after the step the torso height
    ``next_obs[:, 0]`` leaves (0.8, 2.0) or its angle ``next_obs[:, 1]`` leaves (-1, 1)
    (MBPO's function, gymnasium's ``healthy_z_range`` and ``healthy_angle_range``)."""
    height, angle = next_obs[:, 0], next_obs[:, 1]
    return ~((height > 0.8) & (height < 2.0) & (angle > -1.0) & (angle < 1.0))


def ant_terminated(obs, action, next_obs):
    """MuJoCo's Ant (gymnasium v4/v5) is unhealthy: after the step the torso height
    ``next_obs[:, 0]`` leaves [0.2, 1.0] or a value is not finite (MBPO's function for its
    truncated-observation Ant; gymnasium's ``healthy_z_range``)."""
    height = next_obs[:, 0]
    return ~(jnp.all(jnp.isfinite(next_obs), axis=-1) & (height >= 0.2) & (height <= 1.0))


REWARD_FNS: dict[str, StepFn] = {
    "Pendulum-v1": pendulum_reward,
    "NoisyPendulum-v1": pendulum_reward,
    "CartPole-v1": cartpole_reward,
    "Acrobot-v1": acrobot_reward,
    "gymnasium:Pendulum-v1": pendulum_reward,
}
TERMINATION_FNS: dict[str, StepFn] = {
    "Pendulum-v1": never_terminates,
    "NoisyPendulum-v1": never_terminates,
    "CartPole-v1": cartpole_terminated,
    "Acrobot-v1": acrobot_terminated,
    "brax-hopper": brax_hopper_terminated,
    "brax-inverted_pendulum": brax_inverted_pendulum_terminated,
    "gymnasium:Pendulum-v1": never_terminates,
    # gymnasium's MuJoCo tasks (the host path, purembrl.envs.host): MBPO's own functions
    **{f"gymnasium:{task}-v{v}": fn for v in (4, 5) for task, fn in (
        ("InvertedPendulum", inverted_pendulum_terminated),
        ("Hopper", brax_hopper_terminated), ("Walker2d", walker2d_terminated),
        ("Ant", ant_terminated))},
}




def _unit_pairs(obs, pairs):
    """``obs [B, D]`` with each (cos, sin) column pair scaled to unit norm."""
    for c, s in pairs:
        norm = jnp.maximum(jnp.hypot(obs[:, c], obs[:, s]), 1e-6)
        obs = obs.at[:, c].divide(norm).at[:, s].divide(norm)
    return obs


def pendulum_project(obs):
    """Pendulum's [cos theta, sin theta, theta_dot] back onto its set: the pair on the unit
    circle, the speed within +-8 (gymnax's ``max_speed``)."""
    return _unit_pairs(obs, ((0, 1),)).at[:, 2].set(jnp.clip(obs[:, 2], -8.0, 8.0))


def acrobot_project(obs):
    """Acrobot's [cos t1, sin t1, cos t2, sin t2, t1_dot, t2_dot] back onto its set: both pairs
    on the unit circle, the speeds within +-4 pi and +-9 pi (gymnax's ``max_vel_1/2``)."""
    obs = _unit_pairs(obs, ((0, 1), (2, 3)))
    return (obs.at[:, 4].set(jnp.clip(obs[:, 4], -4 * jnp.pi, 4 * jnp.pi))
            .at[:, 5].set(jnp.clip(obs[:, 5], -9 * jnp.pi, 9 * jnp.pi)))


# A model's predicted next observations projected onto the env's observation set (PETS-style
# post-processing, Chua et al. 2018): a learned ensemble predicts cos/sin deltas freely, off
# the unit circle, and speeds beyond the env's clip, which the known reward and termination
# then read as states the env never reaches.
OBS_PROJECTIONS: dict[str, StepFn] = {
    "Pendulum-v1": pendulum_project,
    "Acrobot-v1": acrobot_project,
}


_BUILT_IN = frozenset(REWARD_FNS) | frozenset(TERMINATION_FNS)
_REGISTERED: set[str] = set()


def register(env: str, *, reward_fn: StepFn | None = None,
             termination_fn: StepFn | None = None, overwrite: bool = False) -> None:
    """Make a user's known reward and/or termination function for environment ``env`` (a
    name given to ``purembrl.envs.register``, say) available to the model-based algorithms'
    ``known_reward`` / ``known_termination``, as MBPO's practice of known termination
    functions has it (Janner et al. 2019). Each function is batched: ``fn(obs [B, d],
    action [B, ...], next_obs [B, d]) -> [B]`` (a reward as a float, a termination as a
    bool), like the built-in ones; its output's shape and type are checked against the env's
    spaces when training is built.

    ``ValueError`` for an env name that is not a non-empty string, neither function given, a
    function that is not callable, a built-in env's functions (never replaced), or a
    function already registered for ``env`` (unless ``overwrite``)."""
    if not isinstance(env, str) or not env.strip() or env != env.strip():
        raise ValueError(f"env={env!r} is invalid: allowed a non-empty string without "
                         "surrounding spaces")
    if reward_fn is None and termination_fn is None:
        raise ValueError("known.register: give reward_fn, termination_fn or both")
    for name, fn in (("reward_fn", reward_fn), ("termination_fn", termination_fn)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name}={fn!r} is invalid: allowed a function (obs, action, "
                             "next_obs) -> [B]")
    if env in _BUILT_IN:
        raise ValueError(f"env={env!r} has built-in known functions; they are not replaced")
    for table, fn in ((REWARD_FNS, reward_fn), (TERMINATION_FNS, termination_fn)):
        if fn is not None and env in table and table[env] is not fn and not overwrite:
            raise ValueError(f"env={env!r} already has a registered "
                             f"{'reward' if table is REWARD_FNS else 'termination'} function "
                             "(overwrite=True replaces it)")
    for table, fn in ((REWARD_FNS, reward_fn), (TERMINATION_FNS, termination_fn)):
        if fn is not None:
            table[env] = fn
    _REGISTERED.add(env)


def model_functions(config):
    """For an algorithm config with ``env``, ``model``, ``known_reward`` and
    ``known_termination``: ``(model_config, reward_fn, termination_fn)``, the ensemble config
    learning only what is not known, and the known functions (None where learned). A
    registered function's output is checked here (``ValueError``: its shape must be the
    batch's, a termination's type bool)."""
    model_config = config.model.replace(learn_reward=not config.known_reward,
                                        learn_termination=not config.known_termination)
    reward_fn = REWARD_FNS[config.env] if config.known_reward else None
    termination_fn = TERMINATION_FNS[config.env] if config.known_termination else None
    if config.env in _REGISTERED:
        _check_outputs(config.env, reward_fn, termination_fn)
    return model_config, reward_fn, termination_fn


def _check_outputs(env_name: str, reward_fn, termination_fn) -> None:
    """Trace a registered function on a batch of 2 of the env's shapes (nothing runs)."""
    env, params = envs.make(env_name)
    obs = jax.eval_shape(lambda k: env.reset(k, params)[0], jax.random.key(0))
    action = env.action_space(params).sample(jax.random.key(0))
    batch = lambda x: jax.ShapeDtypeStruct((2, *x.shape), x.dtype)
    args = (batch(obs), batch(jnp.asarray(action)), batch(obs))
    for name, fn, want in (("reward_fn", reward_fn, "a float"),
                           ("termination_fn", termination_fn, "bool")):
        if fn is None:
            continue
        out = jax.eval_shape(fn, *args)
        ok = (getattr(out, "shape", None) == (2,)
              and (jnp.issubdtype(out.dtype, jnp.bool_) if want == "bool"
                   else jnp.issubdtype(out.dtype, jnp.floating)))
        if not ok:
            raise ValueError(f"the registered {name} of env {env_name!r} returned "
                             f"{getattr(out, 'dtype', type(out))}{getattr(out, 'shape', '')} "
                             f"for a batch of 2: allowed {want} of shape [2] (one per "
                             "transition)")


def check(env: str, known_reward: bool, known_termination: bool,
          true_dynamics: bool = False, env_params: str = "", project_obs: bool = False) -> None:
    """``ValueError`` when a config asks for a known function (the true dynamics, an observation
    projection) this module lacks for ``env``, or asks for a built-in one with ``env_params``
    changed: those functions are written for the env's default parameters (CartPole's
    thresholds, Pendulum's torque limit, Acrobot's speed bounds) and would be silently wrong
    for others (register your own for a variant with
    ``envs.register`` and ``register``). The episode's time limit (``max_steps_in_episode``)
    may change: it truncates episodes and is never part of a known function."""
    used = [name for name, on in (("known_reward", known_reward),
                                  ("known_termination", known_termination),
                                  ("true_dynamics", true_dynamics),
                                  ("project_obs", project_obs)) if on]
    changed = set(envs.parse_params(env_params)) - {"max_steps_in_episode"}
    if changed and used and env in _BUILT_IN | frozenset(STATE_FROM_OBS) | frozenset(
            OBS_PROJECTIONS):
        raise ValueError(f"{used[0]}=True is invalid with env_params={env_params!r}: the "
                         f"built-in functions of {env!r} assume its default parameters; set "
                         f"{used[0]}=False, or register the variant (purembrl.envs.register) "
                         "with its own functions (purembrl.envs.known.register)")
    if known_reward and env not in REWARD_FNS:
        raise ValueError(f"known_reward=True is invalid for env={env!r}: no known reward "
                         f"function (known for {', '.join(REWARD_FNS)})")
    if known_termination and env not in TERMINATION_FNS:
        raise ValueError(f"known_termination=True is invalid for env={env!r}: no known "
                         f"termination function (known for {', '.join(TERMINATION_FNS)})")
    if project_obs and env not in OBS_PROJECTIONS:
        raise ValueError(f"project_obs=True is invalid for env={env!r}: no observation "
                         f"projection (known for {', '.join(OBS_PROJECTIONS)})")
    if true_dynamics and env not in STATE_FROM_OBS:
        raise ValueError(f"true_dynamics=True is invalid for env={env!r}: its state cannot be "
                         f"read from its observation (allowed for {', '.join(STATE_FROM_OBS)})")


def _pendulum_state(obs):
    """Pendulum's state from [cos theta, sin theta, theta_dot] (the last torque and the time
    step do not enter the next state)."""
    return pendulum.EnvState(theta=jnp.arctan2(obs[1], obs[0]), theta_dot=obs[2],
                             last_u=jnp.zeros(()), time=jnp.zeros((), jnp.int32))


def _cartpole_state(obs):
    """CartPole's state is its observation [x, x_dot, theta, theta_dot] (time 0: no
    truncation, so ``done`` is the termination alone)."""
    return cartpole.EnvState(x=obs[0], x_dot=obs[1], theta=obs[2], theta_dot=obs[3],
                             time=jnp.zeros((), jnp.int32))


def _acrobot_state(obs):
    """Acrobot's state from [cos t1, sin t1, cos t2, sin t2, t1_dot, t2_dot] (time 0: no
    truncation)."""
    return acrobot.EnvState(joint_angle1=jnp.arctan2(obs[1], obs[0]),
                            joint_angle2=jnp.arctan2(obs[3], obs[2]), velocity_1=obs[4],
                            velocity_2=obs[5], time=jnp.zeros((), jnp.int32))


STATE_FROM_OBS = {"Pendulum-v1": _pendulum_state, "NoisyPendulum-v1": _pendulum_state,
                  "CartPole-v1": _cartpole_state, "Acrobot-v1": _acrobot_state}


def true_model_step(env_name: str):
    """The true dynamics of ``env_name`` as a batched model step ``(key, obs [B, d],
    action [B, ...]) -> (next_obs [B, d], reward [B], terminated [B])``: gymnax's own
    ``step_env`` from the state read off each observation. ``ValueError`` for an env whose
    state the observation does not determine (allowed: the keys of ``STATE_FROM_OBS``)."""
    if env_name not in STATE_FROM_OBS:
        raise ValueError(f"true dynamics are not available for env={env_name!r}: its state "
                         f"cannot be read from its observation (available for "
                         f"{', '.join(STATE_FROM_OBS)})")
    env, env_params = envs.make(env_name)
    state_of = STATE_FROM_OBS[env_name]

    def one(key, obs, action):
        next_obs, _, reward, done, _ = env.step_env(key, state_of(obs), action, env_params)
        return (next_obs.astype(jnp.float32), jnp.reshape(reward, ()).astype(jnp.float32),
                jnp.reshape(done, ()))

    def model_step(key, obs, action):
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(one)(keys, obs, action)

    return model_step
