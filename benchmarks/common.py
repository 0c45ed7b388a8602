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


def run(module, config, seeds: int, seed: int, part: tuple[int, int] | None = None):
    """``seeds`` seeds of ``module.make_train(config)`` under one jit(vmap): (metrics as NumPy,
    seconds including compilation). ``part=(i, n)`` runs only the i-th of n equal, contiguous
    slices of the same keys, so that n processes (one per core) together run the same seeds."""
    keys = jax.random.split(jax.random.key(seed), seeds)
    if part is not None:
        i, n = part
        keys = keys[i * seeds // n:(i + 1) * seeds // n]
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


def print_budget_table(runs, budgets, name_width: int, cell_width: int) -> None:
    """One row per method of ``runs`` (name -> (metrics, seconds)): median [IQR] return at
    each budget of env steps, "-" where the run did not evaluate there."""
    print(f"{'method':<{name_width}}" + "".join(f"{b:>{cell_width}}" for b in budgets))
    for name, (metrics, _) in runs.items():
        cells = []
        for b in budgets:
            stat = at_budget(metrics, b)
            cells.append("-" if stat is None else f"{stat[0]:.0f} [{stat[1]:.0f}, {stat[2]:.0f}]")
        print(f"{name:<{name_width}}" + "".join(f"{c:>{cell_width}}" for c in cells))


def steps_shown(per_seed) -> str:
    """Per-seed env steps to a threshold, "never" where it was not reached."""
    return ", ".join("never" if np.isinf(v) else f"{v:.0f}" for v in per_seed)


def plot_curves(runs, path: str, threshold: float, title: str, ylabel: str,
                figsize=(6, 4), alpha: float = 0.2, log_x: bool = False) -> None:
    """Median return against env steps with an IQR band per method, a dashed threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    for name, (metrics, _) in runs.items():
        x = metrics["env_steps"][0]
        q25, med, q75 = np.percentile(metrics["eval_return"], [25, 50, 75], axis=0)
        ax.plot(x, med, label=name)
        ax.fill_between(x, q25, q75, alpha=alpha)
    ax.axhline(threshold, color="grey", lw=0.8, ls="--")
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel="env steps", ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
