"""The driver's public functions under one name: ``from purembrl import run``.

``run.run(algo, config, num_seeds, out=DIR)`` trains seeds under one ``jit(vmap)`` in chunks
(progress, checkpoints, exact resume, divergence guard) and writes the results;
``run.sweep(algo, configs, num_seeds)`` trains a grid in one compile; ``run.load_policy`` /
``run.evaluate_checkpoint`` bring trained agents back. The implementation lives in
``purembrl.driver``, one module per responsibility (its docstring lists them).
"""

from purembrl.driver import *  # noqa: F403
from purembrl.driver import __all__  # noqa: F401
