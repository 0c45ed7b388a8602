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
* optional ``make_episode_loop(config) -> purembrl.loop.EpisodeLoop | None``: where each
  iteration is one episode, the same run as per-step functions, ``make_loop`` being
  ``episodes_loop`` of it; ``train`` and ``sweep`` then play the seeds as a pool of runs that
  do not wait for each other's episodes (``purembrl.loop.pool_episodes``), with the same
  numbers (tabular Dyna-Q's episode mode).

``get(name)`` imports one by name for the driver and the command line; the registry below is the
only place that lists them, so the driver itself knows no algorithm. A user's algorithm (a module
keeping the contract) joins it with ``register(module)``: ``run.run``, ``run.sweep``,
``run.load_policy`` and, with ``--import MODULE``, every command of the command line then know
it by name.
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


CONTRACT = ("Config", "make_loop", "make_train", "policy")
_REGISTERED: dict[str, ModuleType] = {}


def register(module: ModuleType, name: str | None = None, *, overwrite: bool = False) -> str:
    """Make a user's algorithm module known by ``name`` (default: the module's own last name)
    to ``get``, the driver, checkpoints and the command line; returns the name.

    ``ValueError`` when the module lacks part of the contract (``CONTRACT``), the name is not
    an identifier, or it is taken (a library algorithm's always; another registered module's
    unless ``overwrite``). Registering the same module again is a no-op, so a module may
    register itself at import. A checkpoint stores the name: loading it later (``eval``,
    ``run.load_policy``, ``--resume``) needs the same registration first (``--import``)."""
    name = module.__name__.rsplit(".", 1)[-1] if name is None else name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name={name!r} is invalid: allowed a Python identifier")
    missing = [part for part in CONTRACT if not hasattr(module, part)]
    if missing:
        raise ValueError(f"{module.__name__} is not an algorithm module: it lacks "
                         f"{', '.join(missing)} (the contract: {', '.join(CONTRACT)}; "
                         "purembrl.algos's docstring)")
    if name in ALGORITHMS:
        raise ValueError(f"name={name!r} is taken by purembrl's own algorithm")
    if name in _REGISTERED and _REGISTERED[name] is not module and not overwrite:
        raise ValueError(f"name={name!r} is taken by {_REGISTERED[name].__name__} (register "
                         "with overwrite=True to replace it)")
    _REGISTERED[name] = module
    return name


def names() -> list[str]:
    """Every algorithm name ``get`` accepts: the library's, then the registered ones."""
    return [*ALGORITHMS, *_REGISTERED]


def name_of(module: ModuleType) -> str:
    """The name an algorithm module is known by (``purembrl.algos.mbpo`` -> ``mbpo``; a
    registered module: its registered name)."""
    for name, registered in _REGISTERED.items():
        if registered is module:
            return name
    return module.__name__.rsplit(".", 1)[-1]


def get(name: str) -> ModuleType:
    """The algorithm module known as ``name``; ``ValueError`` lists the known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known algorithms: {', '.join(names())} "
                         "(your own: purembrl.algos.register, or --import MODULE)")
    return importlib.import_module(ALGORITHMS[name])
