"""Trained agents back from a checkpoint: their configs and states, one greedy policy, or every
run evaluated afresh."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np

from purembrl import checkpoint as ckpt
from purembrl.config import as_dict
from purembrl.driver import engine, report, sweeps


def load_checkpointed(directory: str | os.PathLike):
    """A run's or sweep's checkpoint in ``directory``, rebuilt from what it stores: ``(algo,
    configs, states, meta)`` with one config and one state (no seed axis) per run, in the
    driver's order (point-major for sweeps). ``CheckpointError`` if missing or corrupt."""
    from purembrl import algos
    from purembrl.config import from_dict

    path = os.path.join(os.fspath(directory), engine.CHECKPOINT)
    meta = ckpt.read_meta(path)
    algo = algos.get(meta["algorithm"])
    num_seeds, seed = meta["num_seeds"], meta["seed"]
    # the templates come from the same guarded init the driver ran, so they cannot drift
    if "sweep" in meta:
        configs = [from_dict(algo.Config, c) for c in meta["sweep"]]
        init = engine.guarded(*sweeps.sweep_member(algo))[0]
        template = jax.eval_shape(jax.vmap(init), *sweeps.sweep_inputs(configs, seed, num_seeds))
        ((_, states), _), _, _ = ckpt.load(path, template)
        configs = [c for c in configs for _ in range(num_seeds)]
    else:
        config = from_dict(algo.Config, meta["config"])
        loop = algo.make_loop(config)
        init = engine.guarded(loop.init, loop.step)[0]
        template = jax.eval_shape(jax.vmap(init), engine.seed_keys(seed, num_seeds))
        (states, _), _, _ = ckpt.load(path, template)
        configs = [config] * num_seeds
    per_run = [jax.tree.map(lambda x, i=i: x[i], states) for i in range(len(configs))]
    return algo, configs, per_run, meta


def load_policy(directory: str | os.PathLike, index: int = 0):
    """``(policy, config)`` of run ``index`` of the checkpoint in ``directory``: the trained
    agent as a pure function ``policy(key, obs [B, ...]) -> action [B, ...]``."""
    algo, configs, states, _ = load_checkpointed(directory)
    if not 0 <= index < len(states):
        raise ValueError(f"index={index} is invalid: the checkpoint holds {len(states)} runs")
    return algo.policy(states[index], configs[index]), configs[index]


def evaluate_checkpoint(directory: str | os.PathLike, episodes: int = 10,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Every run of a checkpoint, evaluated afresh with its greedy policy on ``episodes``
    episodes: ``(mean return [runs], mean length [runs], meta)``."""
    from purembrl import envs, interact

    if episodes < 1:
        raise ValueError(f"episodes={episodes} is invalid: allowed an integer >= 1")
    algo, configs, states, meta = load_checkpointed(directory)
    compiled = {}  # one evaluation program per distinct config; the state is an argument

    def evaluation(config):
        env, env_params = envs.make(config.env, config.env_params)
        max_steps = interact.spec(env, env_params).max_steps
        return jax.jit(lambda state, key: interact.evaluate(
            env, env_params, algo.policy(state, config), key, episodes, max_steps))

    returns, lengths = [], []
    for i, (config, state) in enumerate(zip(configs, states, strict=True)):
        name = json.dumps(report.plain(as_dict(config)), sort_keys=True)
        if name not in compiled:
            compiled[name] = evaluation(config)
        ret, length = compiled[name](state, jax.random.fold_in(jax.random.key(seed), i))
        returns.append(float(ret))
        lengths.append(float(length))
    return np.array(returns), np.array(lengths), meta
