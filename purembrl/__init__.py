"""purembrl: functional, pure-JAX model-based reinforcement learning with a policy.

A learned model of the environment makes data or targets for an off-policy, model-free learner.
Building blocks (``buffer``, ``types``, ``envs``, ...) are stateless functions over small pytrees;
each algorithm in ``purembrl.algos`` is one file with a ``Config`` and ``make_train(config)``
returning ``train(key) -> (state, metrics)``, which ``jax.jit(jax.vmap(train))`` accepts.
"""

__version__ = "0.1.0"
