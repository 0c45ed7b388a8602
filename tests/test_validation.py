"""Bad configs across the library: each is a ValueError that names the field and what is allowed,
before anything compiles: at construction, or, for a check that needs the env itself (its
action space, its episode length), when training is built (``make_train``; a config builds no
env). The list is the reliability table's "bad inputs" row in benchmarks/RESULTS.md."""

import pytest

from purembrl import dynamics
from purembrl.algos import c_learning, dqn, dyna, dyna_q, mba, mbpo, mbve, sac, sf_gpi
from purembrl.learners import DQNConfig, NAFConfig, SACConfig


def built(algo, **fields):
    """``make_train`` of the config: where the checks that need the env run."""
    return algo.make_train(algo.Config.for_env(**fields))


BAD = [
    # ranges
    ("gamma = 1", lambda: SACConfig(gamma=1.0), "gamma=1.0 is invalid: allowed 0 <= gamma < 1"),
    ("tau = 0", lambda: SACConfig(tau=0.0), "tau=0.0 is invalid"),
    ("negative learning rate", lambda: DQNConfig(learning_rate=-1.0), "learning_rate=-1.0"),
    ("negative exploration noise", lambda: NAFConfig(exploration_noise=-1.0),
     "exploration_noise=-1.0"),
    ("epsilon > 1", lambda: dyna_q.Config.for_env(epsilon=2.0), "epsilon=2.0 is invalid"),
    ("step size 0", lambda: dyna_q.Config.for_env(alpha=0.0), "alpha=0.0 is invalid"),
    ("real_ratio > 1", lambda: mbpo.Config.for_env(env="Pendulum-v1", real_ratio=1.5),
     "real_ratio=1.5 is invalid: allowed 0 <= real_ratio <= 1"),
    ("zero evaluation episodes", lambda: sac.Config.for_env(env="Pendulum-v1", eval_episodes=0),
     "eval_episodes=0"),
    ("zero next-state samples",
     lambda: dyna.Config.for_env(env="Pendulum-v1", num_next_samples=0),
     "num_next_samples=0"),
    # types
    ("float where an int belongs",
     lambda: sac.Config.for_env(env="Pendulum-v1", batch_size=64.5),
     "batch_size=64.5 is invalid: allowed an integer"),
    ("bool where an int belongs",
     lambda: sac.Config.for_env(env="Pendulum-v1", batch_size=True),
     "batch_size=True is invalid"),
    ("empty network", lambda: SACConfig(hidden_sizes=()), "hidden_sizes=() is invalid"),
    ("unknown activation", lambda: SACConfig(activation="bogus"), "activation='bogus'"),
    # budgets and schedules
    ("evaluation period 0", lambda: sac.Config.for_env(env="Pendulum-v1", eval_every=0),
     "eval_every=0"),
    ("budget shorter than the warm-up",
     lambda: mbpo.Config.for_env(env="Pendulum-v1", total_steps=100),
     "total_steps=100 is invalid"),
    ("evaluation period 0 (SFQL)", lambda: sf_gpi.Config.for_env(eval_every=0),
     "eval_every=0"),
    ("rollout period 0",
     lambda: mba.Config.for_env(env="Pendulum-v1", rollout_freq=0), "rollout_freq=0"),
    # cross-field rules
    ("minibatch larger than the buffer (SAC)",
     lambda: sac.Config.for_env(env="Pendulum-v1", batch_size=5000, buffer_size=1000),
     "batch_size=5000 is invalid: allowed at most buffer_size=1000"),
    ("minibatch larger than the buffer (DQN)",
     lambda: dqn.Config.for_env(env="CartPole-v1", batch_size=5000, buffer_size=1000),
     "batch_size=5000 is invalid: allowed at most buffer_size=1000"),
    ("minibatch larger than the buffer (MBPO)",
     lambda: mbpo.Config.for_env(env="Pendulum-v1", batch_size=5000, buffer_size=1000),
     "allowed at most buffer_size=1000"),
    ("rollouts longer than an episode (MBPO)",
     lambda: built(mbpo, env="Pendulum-v1", rollout_schedule=(1, 1, 1, 500)),
     "rollout_schedule max_len=500 is invalid: allowed at most the env's episode length, 200"),
    ("rollouts longer than an episode (MBA)",
     lambda: built(mba, env="Pendulum-v1", rollout_length=201),
     "rollout_length=201 is invalid: allowed at most the env's episode length"),
    ("value expansion longer than an episode",
     lambda: built(mbve, env="Pendulum-v1", horizon=500), "horizon=500 is invalid"),
    ("more elites than members", lambda: dynamics.EnsembleConfig(num_members=3, num_elites=5),
     "num_elites=5 is invalid"),
    ("a discrete-action learner on a continuous env", lambda: built(dqn, env="Pendulum-v1"),
     "DQN needs a discrete action space"),
    ("a continuous-action learner on a discrete env", lambda: built(sac, env="CartPole-v1"),
     "SAC needs a continuous action space"),
    ("NAF on discrete actions", lambda: built(mba, env="CartPole-v1"), "discrete"),
    ("a goal-conditioned algorithm on a plain env",
     lambda: c_learning.Config.for_env(env="Pendulum-v1"),
     "env='Pendulum-v1' is invalid"),
    ("known reward where none is known",
     lambda: mbpo.Config.for_env(env="MountainCar-v0", known_reward=True), "no known reward"),
    ("true dynamics of an env whose state is hidden",
     lambda: mba.Config.for_env(env="MountainCarContinuous-v0", true_dynamics=True),
     "true_dynamics=True is invalid"),
    ("unknown env", lambda: sac.Config.for_env(env="Nope-v0"), "unknown env 'Nope-v0'"),
    ("a learner of the wrong action space (MBPO)",
     lambda: built(mbpo, env="CartPole-v1", learner=SACConfig()),
     "learner=SACConfig is invalid for this env: its actions are discrete (allowed: DQNConfig)"),
    ("not a learner config", lambda: mbpo.Config(learner=dynamics.EnsembleConfig()),
     "learner=EnsembleConfig(...) is invalid: no learner is registered for it"),
    # wrong types, at construction (issue 23's reproductions)
    ("a dict for a nested config", lambda: mbpo.Config(learner={"actor_lr": 1e-3}),
     "learner={'actor_lr': 0.001} is invalid: allowed a config object"),
    ("a string for the ensemble", lambda: mbpo.Config(model="big"),
     "model='big' is invalid: allowed an EnsembleConfig"),
    ("a list for a number", lambda: mbpo.Config(real_ratio=[0.5, 0.6]),
     "real_ratio=[0.5, 0.6] is invalid: allowed a real number"),
    ("a number for the env", lambda: mbpo.Config(env=123),
     "env=123 is invalid: allowed a string"),
    ("a string for a flag", lambda: sac.Config(normalize_obs="yes"),
     "normalize_obs='yes' is invalid: allowed True or False"),
    ("a list for the layer widths", lambda: SACConfig(hidden_sizes=[64, 64]),
     "hidden_sizes=[64, 64] is invalid: allowed a tuple of integers (a list is not accepted"),
    ("a budget beyond int32", lambda: sac.Config(total_steps=3_000_000_000),
     "total_steps=3000000000 is invalid: allowed an integer of at most 2,147,483,647"),
    ("None for a required nested config", lambda: sac.Config(learner=None),
     "learner=None is invalid: allowed a SACConfig"),
]


def _float_fields():
    from purembrl import algos
    from purembrl.config import field_types

    classes = [algos.get(n).Config for n in algos.ALGORITHMS]
    classes += [SACConfig, DQNConfig, NAFConfig, dynamics.EnsembleConfig]
    return [(cls, name) for cls in classes for name, kind in field_types(cls).items()
            if kind is float]


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1 + 1j],
                         ids=["inf", "-inf", "nan", "complex"])
def test_every_float_field_of_every_config_is_finite_and_real_or_refused(value):
    fields = _float_fields()
    assert len(fields) > 30  # every algorithm's and learner's float fields
    for cls, name in fields:
        make = cls.for_env if hasattr(cls, "for_env") else cls
        with pytest.raises(ValueError, match=f"{name}=.* is invalid"):
            make(**{name: value})


def test_integral_floats_are_integers_and_nested_errors_keep_their_prefix_on_the_cli():
    from purembrl.__main__ import build_config
    from purembrl.config import parse_value

    assert parse_value(mbpo.Config, "total_steps", "1e4") == 10_000
    assert isinstance(parse_value(mbpo.Config, "total_steps", "1.5e3"), int)
    with pytest.raises(ValueError, match="total_steps='1.5' is not a valid int"):
        parse_value(mbpo.Config, "total_steps", "1.5")
    with pytest.raises(ValueError, match="learner.critic_lr='inf' is invalid: allowed a finite"):
        parse_value(mbpo.Config, "learner.critic_lr", "inf")
    with pytest.raises(ValueError, match="^model.batch_size=0 is invalid"):
        build_config(mbpo, "Pendulum-v1", ["model.batch_size=0"])


@pytest.mark.parametrize("build, message", [(b, m) for _, b, m in BAD],
                         ids=[name for name, _, _ in BAD])
def test_bad_config_is_a_value_error_naming_it(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_every_field_of_every_config_refuses_a_value_of_another_kind():
    """Independent of ``config._fits``: a string where anything else belongs, a number where a
    string belongs, a list where a tuple belongs: each a ValueError naming the field."""
    import dataclasses
    import typing

    from purembrl import algos
    from purembrl.config import _unwrap_optional

    classes = [algos.get(n).Config for n in algos.ALGORITHMS]
    classes += [SACConfig, DQNConfig, NAFConfig, dynamics.EnsembleConfig]
    tried = 0
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = _unwrap_optional(hints[f.name])
            wrong = [7] if kind is str else ["x"]
            if kind is tuple or typing.get_origin(kind) is tuple:
                wrong.append([1, 2])
            for value in wrong:
                with pytest.raises(ValueError, match=f"^{f.name}=.* is invalid"):
                    cls(**{f.name: value})
                tried += 1
    assert tried > 200


def test_an_env_that_cannot_be_built_offline_is_a_value_error_naming_it(monkeypatch):
    """Issue 23: ``MNISTBandit-bsuite`` downloads MNIST when made; offline that was a URLError
    traceback. Any gymnax env whose construction fails on the network or on a missing package
    is a ValueError naming the env and the reason (the command line's one line, exit 2)."""
    import urllib.error

    import gymnax

    from purembrl import envs

    def offline(name, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(gymnax, "make", offline)
    with pytest.raises(ValueError, match="env 'MNISTBandit-bsuite' could not be built: it fetches "
                       "data over the network when it is made, and that failed"):
        envs.make("MNISTBandit-bsuite")

    def missing(name, **kwargs):
        raise ModuleNotFoundError("No module named 'minatar'")

    monkeypatch.setattr(gymnax, "make", missing)
    with pytest.raises(ValueError, match="needs a package that is not installed"):
        envs.make("Breakout-MinAtar")
