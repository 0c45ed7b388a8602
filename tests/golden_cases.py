"""The golden cases: every registered algorithm on its main env (and the learner and model
variants the glue layer routes differently) at a tiny budget, 2 seeds from fixed keys.

``tests/golden/metrics.npz`` holds their metrics as recorded before the glue redesign;
``tests/test_golden.py`` checks that today's code reproduces them bit for bit. Regenerate an
entry only for a documented change of random-draw order:
``python -m tests.golden_cases --write NAME ...``.

Re-recorded so far (each in the commit that made the change, with the reason in its message):
``sf_gpi``, ``sf_gpi_h`` (SFQL's tie-breaking draw, benchmarks/RESULTS.md); ``dqn`` (the one
off-policy loop averages a period's loss and Q as every other learner does, a plain mean
instead of DQN's NaN-skipping one: ``q_loss`` and ``q_mean`` moved by at most 1.1e-7
relative, every other number bit-identical, training unchanged); ``dyna``, ``dyna_dqn``,
``mbve``, ``mbve_normalized`` (the fit's ``model_epochs`` metric added, every recorded number
bit-identical). ``dqn_train_every``, ``sac_normalized``, ``mbve_normalized`` (the running
observation statistics sum their minibatch in a fixed pairwise order,
``learners.normalize.pairwise_sum``, instead of XLA's reduction: recorded on an Intel Xeon,
these three differed in the last bit on an AMD EPYC; they moved by at most 6.5e-6 relative),
and again (the normalised inputs divide by an exact square root: XLA had rewritten the
division into a product with ``rsqrt``, which its CPU backend computes from the hardware's
approximate ``rsqrtss``, whose bits differ between Intel and AMD, and which was what still made
these three differ between the two machines; they moved by at most 5.4e-6 relative).
``mbpo_ragged`` was recorded after the redesign: it
pins a budget whose periods divide nothing (the last evaluation period cut at the budget).
``dqn_n_step`` was recorded when n-step returns were added (2026-12-03), ``dyna_dqn_n_step``
when deep Dyna took them (2026-12-03, on an AMD EPYC). ``sf_gpi_h_mlp`` was recorded when
SFQL-h's features could be a network (2026-12-05). Both SFQL-h cases say
``feature_task_sweeps=0`` since that field was added with a default of 20 (2026-12-05), and
``sf_gpi_h_mlp`` says ``feature_gate=False`` since that one was added with a default of True
(2026-12-07): the protocol they pinned, bit for bit. ``mbpo_dqn`` says
``rollout_policy="behaviour"`` since the CartPole preset's rollouts act at the end of
epsilon's schedule (2026-12-08).
``dyna_q``, ``dyna_q_plus``
(2026-12-04: a planning update's two uniforms come from one Threefry block of the counters
(update, 0) under the real step's planning key, ``dyna_q.counter_uniforms``, instead of
``uniform(fold_in(key, update), (3,))``; the real steps' draws are unchanged; Figure 8.2's
curves at 400 runs per n are the same within two standard errors, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

from purembrl import algos, dynamics
from purembrl.learners import DQNConfig, NAFConfig, SACConfig

PATH = os.path.join(os.path.dirname(__file__), "golden", "metrics.npz")
SEEDS = 2

_MODEL = dict(num_members=3, num_elites=2, hidden_sizes=(16,), max_epochs=2)


def _model():
    return dynamics.EnsembleConfig(**_MODEL)


def _sac(**fields):
    return SACConfig(hidden_sizes=(16, 16), **fields)


def _dqn(**fields):
    return DQNConfig(hidden_sizes=(16, 16), **fields)


def _mbpo(**fields):
    base = dict(env="Pendulum-v1", total_steps=500, eval_every=100, initial_random_steps=300,
                model_train_freq=100, rollout_freq=50, rollouts_per_step=4, updates_per_step=2,
                batch_size=32, eval_episodes=1, epoch_length=100, model=_model(),
                rollout_schedule=(1, 3, 1, 3), learner=_sac())
    return {**base, **fields}


def _mbpo_cartpole(**fields):
    # one-step targets and rollouts acting as the real steps, as the CartPole preset had them
    # when the case was pinned (the preset has n_step = model_n_step = 10 since 2026-12-04 and
    # rollout_policy="settled" since 2026-12-08)
    return _mbpo(env="CartPole-v1", learner=_dqn(eps_decay_steps=200), n_step=1,
                 model_n_step=1, rollout_policy="behaviour", **fields)


def _dyna(**fields):
    base = dict(env="Pendulum-v1", total_steps=500, eval_every=250, initial_random_steps=250,
                model_train_freq=250, updates_per_step=2, batch_size=16, num_next_samples=3,
                eval_episodes=1, model=_model(), learner=_sac())
    return {**base, **fields}


def _mbve(**fields):
    base = dict(env="Pendulum-v1", total_steps=500, eval_every=250, initial_random_steps=250,
                eval_episodes=1, updates_per_step=2, batch_size=16, horizon=2, model=_model(),
                learner=_sac())
    return {**base, **fields}


def _mba(**fields):
    base = dict(env="Pendulum-v1", total_steps=500, eval_every=100, initial_random_steps=300,
                model_train_freq=100, rollout_freq=50, rollouts_per_step=4, rollout_length=3,
                imagination_retain_steps=100, real_updates=2, imagination_updates=2,
                batch_size=16, eval_episodes=1, model=_model(),
                learner=NAFConfig(hidden_sizes=(16, 16)))
    return {**base, **fields}


_SF = dict(env="FourRoomObjects-small", eval_episodes=1, eval_max_steps=60)

# name -> (algorithm, the Config's fields). The fields are what the config API of the day
# needs to say; the numbers they produce must not change.
CASES: dict[str, tuple[str, dict]] = {
    "dyna_q": ("dyna_q", dict(env="DynaMaze", planning_steps=5, num_episodes=4, eval_every=2)),
    "dyna_q_plus": ("dyna_q", dict(env="BlockingMaze", plus=True, kappa=1e-3,
                                   num_episodes=3, eval_every=3, planning_steps=3)),
    "sac": ("sac", dict(env="Pendulum-v1", total_steps=400, eval_every=100,
                        initial_random_steps=200, eval_episodes=1, batch_size=16,
                        learner=_sac())),
    "sac_normalized": ("sac", dict(env="Pendulum-v1", total_steps=300, eval_every=100,
                                   initial_random_steps=200, eval_episodes=1, batch_size=16,
                                   learner=_sac(), normalize_obs=True)),
    "dqn": ("dqn", dict(env="CartPole-v1", total_steps=400, eval_every=100,
                        initial_random_steps=200, eval_episodes=1, batch_size=16, n_step=1,
                        learner=_dqn(eps_decay_steps=150))),
    "dqn_train_every": ("dqn", dict(env="CartPole-v1", total_steps=400, eval_every=200,
                                    initial_random_steps=200, eval_episodes=1, batch_size=16,
                                    train_every=3, updates_per_step=2, normalize_obs=True,
                                    n_step=1,
                                    learner=_dqn(target_update="periodic", target_period=7))),
    "dqn_n_step": ("dqn", dict(env="CartPole-v1", total_steps=400, eval_every=100,
                               initial_random_steps=200, eval_episodes=1, batch_size=16,
                               n_step=5, learner=_dqn(eps_decay_steps=150))),
    "mbpo": ("mbpo", _mbpo()),
    "mbpo_model_off": ("mbpo", _mbpo(real_ratio=1.0)),
    "mbpo_dqn": ("mbpo", _mbpo_cartpole(real_ratio=0.25)),
    "mbpo_ragged": ("mbpo", _mbpo(total_steps=470, model_train_freq=70, rollout_freq=30)),
    "dyna": ("dyna", _dyna()),
    # one-step targets without all_actions, as the CartPole preset had them when the cases were
    # pinned (the preset has n_step = 10 and all_actions since 2026-12-05)
    "dyna_dqn": ("dyna", _dyna(env="CartPole-v1", learner=_dqn(eps_decay_steps=100),
                               normalize_obs=True, n_step=1, all_actions=False)),
    "dyna_dqn_n_step": ("dyna", _dyna(env="CartPole-v1", learner=_dqn(eps_decay_steps=100),
                                      n_step=4, all_actions=False)),
    "mbve": ("mbve", _mbve()),
    "mbve_normalized": ("mbve", _mbve(normalize_obs=True, td_k=False)),
    "mba": ("mba", _mba()),
    "sf_gpi": ("sf_gpi", dict(num_tasks=2, steps_per_task=600, eval_every=300, **_SF)),
    "sf_gpi_h": ("sf_gpi", dict(method="sfql_h", feature_model="table", feature_tasks=1,
                                feature_task_sweeps=0, num_tasks=2, steps_per_task=600,
                                eval_every=300, **_SF)),
    "sf_gpi_h_mlp": ("sf_gpi", dict(method="sfql_h", feature_model="mlp", w_step="nlms",
                                    feature_task_sweeps=0, feature_gate=False, feature_tasks=1,
                                    num_tasks=2, steps_per_task=600, eval_every=300,
                                    feature_updates=50,
                                    feature_hidden_sizes=(16,), **_SF)),
    "sf_policy_iteration": ("sf_policy_iteration", dict(num_iterations=2,
                                                        steps_per_iteration=300, td_updates=50)),
    "sf_policy_iteration_deep": ("sf_policy_iteration", dict(
        encoding="obs", hidden_sizes=(16,), normalised=False, num_iterations=2,
        steps_per_iteration=300, td_updates=50)),
    "c_learning": ("c_learning", dict(total_steps=600, eval_every=200, initial_random_steps=200,
                                      updates_per_round=5, batch_size=32, eval_episodes=2,
                                      hidden_sizes=(32, 32))),
    "c_learning_nce": ("c_learning", dict(critic="nce", total_steps=600, eval_every=200,
                                          initial_random_steps=200, updates_per_round=5,
                                          batch_size=32, eval_episodes=2,
                                          hidden_sizes=(32, 32))),
}


def config(name: str):
    algo_name, fields = CASES[name]
    return algos.get(algo_name).Config.for_env(**fields)


def keys() -> jax.Array:
    """The cases' seed keys: ``split(key(0), SEEDS)``."""
    return jax.random.split(jax.random.key(0), SEEDS)


def train(name: str):
    """The case's ``jit(vmap(train))``: seed keys in, ``{metric: [seeds, evaluations, ...]}``
    out as NumPy arrays (the final states dropped)."""
    algo = algos.get(CASES[name][0])
    program = jax.jit(jax.vmap(algo.make_train(config(name))))

    def run(seed_keys: jax.Array) -> dict[str, np.ndarray]:
        _, out = program(seed_keys)
        return {k: np.asarray(v) for k, v in out.items()}

    return run


def metrics(name: str) -> dict[str, np.ndarray]:
    """The case's metrics for ``keys()``, ``[seeds, evaluations, ...]`` each, as NumPy arrays."""
    return train(name)(keys())


def load() -> dict[str, dict[str, np.ndarray]]:
    """``{case: {metric: array}}`` from the golden file."""
    with np.load(PATH) as data:
        out: dict[str, dict[str, np.ndarray]] = {}
        for key in data.files:
            case, metric = key.split("/", 1)
            out.setdefault(case, {})[metric] = data[key]
    return out


def write(names) -> None:
    """Record (or re-record) the named cases, keeping the others as they are."""
    golden = load() if os.path.exists(PATH) else {}
    for name in names:
        golden[name] = metrics(name)
        print(name, {k: v.shape for k, v in golden[name].items()})
    flat = {f"{case}/{m}": v for case, ms in golden.items() for m, v in ms.items()}
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    np.savez_compressed(PATH, **flat)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "--write":
        raise SystemExit("usage: python -m tests.golden_cases --write [NAME ...] (all if none)")
    write(args[1:] or list(CASES))
