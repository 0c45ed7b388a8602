"""Helpers shared by the benchmark scripts: the machine's name, random-policy data."""

from __future__ import annotations

import os
import platform

import jax
import jax.numpy as jnp

from purembrl.types import Transition


def machine() -> str:
    """CPU model, core count, JAX version and backend (and the accelerator, if any)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    device = jax.devices()[0]
    backend = jax.default_backend()
    where = backend if backend == "cpu" else f"{backend} ({device.device_kind})"
    return f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {where}"


def random_policy_transitions(env, env_params, key: jax.Array, num_steps: int) -> Transition:
    """``num_steps`` transitions of one gymnax env under a uniform random policy, with the true
    next observation (``info["final_observation"]``) across auto-resets."""
    space = env.action_space(env_params)

    def step(carry, k):
        obs, state = carry
        key_action, key_step = jax.random.split(k)
        action = space.sample(key_action)
        next_obs, state, reward, terminated, _, info = env.step(key_step, state, action,
                                                                env_params)
        transition = Transition(obs=obs, action=jnp.asarray(action), reward=reward,
                                next_obs=info["final_observation"], terminated=terminated)
        return (next_obs, state), transition

    key_reset, key_steps = jax.random.split(key)
    obs, state = env.reset(key_reset, env_params)
    _, transitions = jax.lax.scan(step, (obs, state), jax.random.split(key_steps, num_steps))
    return transitions
