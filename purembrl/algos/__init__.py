"""Single-file algorithms. Each module has ``Config``, ``make_train(config)`` and ``make_loop``.

The contract every algorithm module keeps:

* ``Config``: a frozen dataclass (``flax.struct``) of settings; static fields shape the compiled
  program, pytree leaves (numbers) can be vmapped over (``run.sweep``); bad values raise
  ``ValueError`` on construction, naming the field.
* ``make_loop(config) -> purembrl.loop.TrainLoop``: ``init(key) -> state``, ``step(state) ->
  (state, metrics)`` (one evaluation per step) and ``num_iterations``; the driver runs it.
* ``make_train(config)``: ``train(key) -> (state, metrics [num_iterations, ...])``, the same loop
  as one scan; ``jax.jit(jax.vmap(train))`` runs seeds side by side.
* ``policy(state, config)``: the trained agent as ``(key, obs [B, ...]) -> action [B, ...]``.
* optional ``curve(config) -> (x, y)``: the metric names of its learning curve (default
  ``("env_steps", "eval_return")``).

``get(name)`` imports one by name for the driver and the command line; the registry below is the
only place that lists them, so the driver itself knows no algorithm.
"""

from __future__ import annotations

import importlib
from types import ModuleType

ALGORITHMS: dict[str, str] = {
    "dyna_q": "purembrl.algos.dyna_q",
    "sac": "purembrl.algos.sac",
    "dqn": "purembrl.algos.dqn",
    "mbpo": "purembrl.algos.mbpo",
    "sf_gpi": "purembrl.algos.sf_gpi",
    "sf_policy_iteration": "purembrl.algos.sf_policy_iteration",
    "c_learning": "purembrl.algos.c_learning",
    "dyna": "purembrl.algos.dyna",
    "mbve": "purembrl.algos.mbve",
    "mba": "purembrl.algos.mba",
}


def get(name: str) -> ModuleType:
    """The algorithm module registered as ``name``; ``ValueError`` lists the known ones."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known algorithms: {', '.join(ALGORITHMS)}")
    return importlib.import_module(ALGORITHMS[name])
