"""Your own environment and your own algorithm, known by name to every command.

    python examples/custom_parts.py [--seeds 2] [--steps 1200]          # trains both, from Python
    python -m purembrl train mbpo_annealed --env Pendulum-heavy --import examples/custom_parts.py

The environment: ``Pendulum-heavy``, gymnax's Pendulum with a mass of 1.5 instead of 1
(``purembrl.envs.register``: a function returning ``(env, params)``), with Pendulum's known
reward and termination functions (``purembrl.envs.known.register``: neither depends on the
mass), so MBPO learns only the dynamics, as on Pendulum.

The algorithm: ``mbpo_annealed``, MBPO with **one part swapped**, the mixing of real and model
data. MBPO draws a fixed ``real_ratio`` of every minibatch from the real buffer; here that share
starts at 1 (all real: the young model is not trusted) and falls linearly to ``real_ratio`` over
``anneal_steps`` environment steps, each row of the minibatch real with that probability. The
model fit, the branched rollouts, the real steps, the learner and the loop are MBPO's own
(``mbpo.make_parts``), unchanged and not copied: only ``Parts.updates`` is replaced.

This file is also the algorithm module (``Config``, ``make_loop``, ``make_train``, ``policy``:
``purembrl.algos``'s contract) and registers itself when imported, so ``--import`` of it makes
``train``, ``sweep``, ``eval``, ``list`` and ``run.load_policy`` know both names.
"""

from __future__ import annotations

import argparse
import sys

import gymnax
import jax
import jax.numpy as jnp
from flax import struct

from purembrl import algos, buffer, envs, offpolicy, run
from purembrl.algos import mbpo
from purembrl.config import check, static
from purembrl.envs import known
from purembrl.loop import as_train


def heavy_pendulum():
    """gymnax's Pendulum-v1 with a 1.5 kg pendulum."""
    env, params = gymnax.make("Pendulum-v1")
    return env, params.replace(m=1.5)


@struct.dataclass
class Config(mbpo.Config):
    """MBPO's settings (``purembrl.algos.mbpo.Config``, its presets included), and:

    Attributes:
      anneal_steps: environment steps over which the real share of each minibatch falls
        from 1 to ``real_ratio``.
    """

    # Pendulum's preset (known reward and termination: registered below)
    PRESETS = {**mbpo.Config.PRESETS, "Pendulum-heavy": mbpo.Config.PRESETS["Pendulum-v1"]}

    anneal_steps: int = static(2000)

    def __post_init__(self):
        super().__post_init__()
        check("anneal_steps", self.anneal_steps, lambda v: v >= 1, "anneal_steps >= 1")


def annealed_updates(config: Config, parts: offpolicy.Parts) -> offpolicy.Part:
    """The swapped part: G learner updates on minibatches whose rows are real with
    probability ``p(t) = 1 - (1 - real_ratio) min(1, t / anneal_steps)``, else imagined (real
    while the model buffer is still empty)."""
    size = config.batch_size

    def update(learner_state, state: offpolicy.OffPolicyState, key):
        key_real, key_model, key_mask, key_learn = jax.random.split(key, 4)
        real = buffer.sample(state.replay, key_real, size)
        model = buffer.sample(state.model_buffer, key_model, size)
        progress = jnp.minimum(1.0, state.env_steps / config.anneal_steps)
        share = 1.0 - (1.0 - config.real_ratio) * progress
        use_real = (jax.random.uniform(key_mask, (size,)) < share) | ~buffer.can_sample(
            state.model_buffer)
        batch = jax.tree.map(
            lambda r, m: jnp.where(use_real.reshape((size,) + (1,) * (r.ndim - 1)), r, m),
            real, model)
        return parts.learner.update(learner_state, batch, key_learn)  # its metrics as MBPO's

    return offpolicy.repeated(update, config.updates_per_step)


def make_loop(config: Config):
    if config.n_step > 1 or config.model_n_step > 1:
        raise ValueError("mbpo_annealed mixes one-step transitions only: n_step and "
                         "model_n_step must be 1")
    parts = mbpo.make_parts(config)  # MBPO's own pieces, with the default mixing ...
    return offpolicy.make_loop(config, parts._replace(updates=annealed_updates(config, parts)))


def make_train(config: Config):
    return as_train(make_loop(config))


policy = mbpo.policy

envs.register("Pendulum-heavy", heavy_pendulum)
known.register("Pendulum-heavy", reward_fn=known.pendulum_reward,
               termination_fn=known.never_terminates)
algos.register(sys.modules[__name__], "mbpo_annealed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--out", default="runs/example_custom")
    args = parser.parse_args()
    overrides = dict(total_steps=args.steps, eval_every=max(args.steps // 4, 1),
                     eval_episodes=2, anneal_steps=args.steps // 2)
    module = algos.get("mbpo_annealed")
    config = module.Config.for_env("Pendulum-heavy", **overrides)
    result = run.run(module, config, args.seeds, out=args.out, progress=False)
    policy_fn, loaded = run.load_policy(args.out)
    obs = jnp.zeros((1, 3))
    print(f"mbpo_annealed on Pendulum-heavy: final median return "
          f"{float(jnp.median(result.metrics['eval_return'][:, -1])):.1f}; the loaded policy "
          f"(config {type(loaded).__module__}) acts {policy_fn(jax.random.key(0), obs)}")


if __name__ == "__main__":
    main()
