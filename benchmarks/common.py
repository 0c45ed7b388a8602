"""Helpers shared by the benchmark scripts: the machine's name, random-policy data, seeds of an
algorithm run side by side and the statistics of their learning curves."""

from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

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


def run(module, config, seeds: int, seed: int):
    """``seeds`` seeds of ``module.make_train(config)`` under one jit(vmap): (metrics as NumPy,
    seconds including compilation)."""
    keys = jax.random.split(jax.random.key(seed), seeds)
    start = time.perf_counter()
    _, metrics = jax.jit(jax.vmap(module.make_train(config)))(keys)
    metrics = jax.tree.map(np.asarray, metrics)
    return metrics, time.perf_counter() - start


def steps_to(metrics, threshold: float):
    """Per seed: env steps of the first evaluation at or above ``threshold`` (inf if none)."""
    steps, returns = metrics["env_steps"], metrics["eval_return"]
    out = []
    for s, r in zip(steps, returns, strict=True):
        hit = np.nonzero(r >= threshold)[0]
        out.append(float(s[hit[0]]) if hit.size else float("inf"))
    return np.array(out)


def at_budget(metrics, budget):
    """Median and IQR of the return at the last evaluation at or before ``budget`` steps."""
    steps = metrics["env_steps"][0]
    if budget > steps[-1] or budget < steps[0]:
        return None
    i = np.searchsorted(steps, budget, side="right") - 1
    q25, med, q75 = np.percentile(metrics["eval_return"][:, i], [25, 50, 75])
    return med, q25, q75
