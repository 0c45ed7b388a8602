"""Configs have no side effects: presets come from ``Config.for_env``, construction validates
only, and JAX may rebuild a config (every ``jax.tree.map``, ``jit``, ``vmap``) without building
an environment. Nested learner configs survive the JSON round trip and the command line."""

import jax
import numpy as np
import pytest
from flax import struct

from purembrl import algos, config, envs
from purembrl.algos import dyna, mba, mbpo, mbve, sac
from purembrl.learners import DQNConfig, NAFConfig, SACConfig


@pytest.mark.parametrize("name", algos.ALGORITHMS)
def test_a_tree_map_over_a_config_never_builds_the_env(name, monkeypatch):
    algo = algos.get(name)
    built = algo.Config.for_env()  # every preset and default resolved, before the patch

    def refuse(env_name):
        raise AssertionError(f"envs.make({env_name!r}) called while rebuilding a config")

    monkeypatch.setattr(envs, "make", refuse)
    again = jax.tree.map(lambda leaf: leaf, built)
    assert again == built
    leaves, treedef = jax.tree.flatten(built)
    assert jax.tree.unflatten(treedef, leaves) == built
    algo.Config.for_env(**({"env": built.env} if hasattr(built, "env") else {}))


def test_for_env_applies_the_preset_then_the_overrides():
    pendulum = mbpo.PRESETS["Pendulum-v1"]
    config_ = mbpo.Config.for_env("Pendulum-v1", updates_per_step=3)
    assert config_.updates_per_step == 3  # an override wins over the preset
    assert config_.rollout_freq == pendulum["rollout_freq"]  # the preset over the default
    assert config_.learner == pendulum["learner"]
    assert config_.eval_episodes == mbpo.Config().eval_episodes  # neither: the default
    # the plain constructor reads no preset: the class's defaults, the paper's generic setting
    plain = mbpo.Config(env="Pendulum-v1")
    assert plain.rollout_freq == 250 and plain.learner is None
    assert mbpo.Config.for_env() == mbpo.Config.for_env("Pendulum-v1")  # the default env


@struct.dataclass
class _NoEnv(config.Presets):
    width: int = config.static(3)


def test_for_env_on_a_config_without_an_env():
    assert _NoEnv.for_env(width=5) == _NoEnv(width=5)
    with pytest.raises(ValueError, match="env='DynaMaze' is invalid: .*_NoEnv has no env field"):
        _NoEnv.for_env("DynaMaze")


def test_unknown_env_is_refused_at_construction_without_building_it():
    with pytest.raises(ValueError, match="unknown env 'Nope-v0'"):
        mbpo.Config(env="Nope-v0")
    envs.check_name("brax-hopper")  # Brax's registry is read only when the env is built


@pytest.mark.parametrize("learner", [None, SACConfig(tau=0.01), DQNConfig(gamma=0.9),
                                     NAFConfig(hidden_sizes=(8,))])
def test_a_learner_of_any_registered_type_survives_the_json_round_trip(learner):
    original = dyna.Config(env="Pendulum-v1", learner=learner)
    data = config.as_dict(original)
    if learner is not None:
        assert data["learner"]["type"] == config.short_name(type(learner))
    assert config.from_dict(dyna.Config, data) == original
    # a field that holds one class only carries no tag
    assert "type" not in config.as_dict(mbve.Config())["learner"]
    assert config.from_dict(mba.Config, config.as_dict(mba.Config())) == mba.Config()


def test_parse_value_reaches_the_learner_by_name_and_by_field():
    assert config.parse_value(mbpo.Config, "learner", "dqn") == DQNConfig()
    assert config.parse_value(mbpo.Config, "learner.eps_decay_steps", "7") == 7
    assert config.parse_value(mbpo.Config, "learner.actor_lr", "0.5") == 0.5
    with pytest.raises(ValueError, match="learner='td3' is invalid: allowed one of sac, dqn"):
        config.parse_value(mbpo.Config, "learner", "td3")
    with pytest.raises(ValueError, match="unknown field 'learner.bogus'"):
        config.parse_value(sac.Config, "learner.bogus", "1")


def test_the_default_learner_follows_the_action_space():
    from purembrl import interact, learners

    cartpole = interact.spec(*envs.make("CartPole-v1"))
    pendulum = interact.spec(*envs.make("Pendulum-v1"))
    assert learners.default_config(cartpole) == DQNConfig()
    assert learners.default_config(pendulum) == SACConfig()
    # MBPO with no learner given trains DQN on CartPole: the DQN state is what comes back
    tiny = mbpo.Config(env="CartPole-v1", total_steps=300, eval_every=100,
                       initial_random_steps=200, model_train_freq=100, rollout_freq=100,
                       rollouts_per_step=2, updates_per_step=1, batch_size=16,
                       eval_episodes=1, real_ratio=1.0)
    state = jax.eval_shape(mbpo.make_train(tiny), jax.random.key(0))[0]
    assert type(state.learner).__name__ == "DQNState"
    assert np.asarray(tiny.num_iterations) == 1


@pytest.mark.parametrize("algo", [mbpo, dyna])
def test_any_registered_learner_of_the_action_space_runs(algo):
    """NAF, registered for continuous actions, trains in MBPO and deep Dyna by its config alone
    (the whole run traced: shapes and the K-sample batches of deep Dyna)."""
    fields = dict(env="Pendulum-v1", total_steps=300, eval_every=100, initial_random_steps=200,
                  model_train_freq=100, updates_per_step=1, batch_size=16, eval_episodes=1,
                  learner=NAFConfig(hidden_sizes=(8,)))
    if algo is mbpo:
        fields.update(rollout_freq=100, rollouts_per_step=2, rollout_schedule=(1, 1, 1, 1))
    state, metrics = jax.eval_shape(algo.make_train(algo.Config(**fields)), jax.random.key(0))
    assert type(state.learner).__name__ == "NAFState" and "q_loss" in metrics


OFF_POLICY = ("sac", "dqn", "mbpo", "dyna", "mbve", "mba")


@pytest.mark.parametrize("name", OFF_POLICY)
def test_the_shared_off_policy_fields_are_declared_and_checked_once(name):
    """Every off-policy algorithm's Config is an ``algos.base.OffPolicyConfig`` (the model-based
    ones a ``ModelBasedConfig``), so a shared field is refused with one message everywhere."""
    from purembrl.algos import base

    algo = algos.get(name)
    assert issubclass(algo.Config, base.OffPolicyConfig)
    assert issubclass(algo.Config, base.ModelBasedConfig) == (name not in ("sac", "dqn"))
    for field, value, message in [("eval_every", 0, "eval_every=0 is invalid"),
                                  ("batch_size", 2.5, "batch_size=2.5 is invalid"),
                                  ("env", "Pendulum-v9", "Pendulum-v9")]:
        with pytest.raises(ValueError, match=message):
            algo.Config.for_env(**{field: value})
    with pytest.raises(ValueError, match="total_steps=100 is invalid: allowed more than "
                                         "initial_random_steps"):
        algo.Config.for_env(total_steps=100, initial_random_steps=100)
    with pytest.raises(ValueError, match="batch_size=64 is invalid: allowed at most "
                                         "buffer_size=32"):
        algo.Config.for_env(batch_size=64, buffer_size=32)
    if issubclass(algo.Config, base.ModelBasedConfig):
        with pytest.raises(ValueError, match="model_train_freq=0 is invalid"):
            algo.Config.for_env(model_train_freq=0)
        with pytest.raises(ValueError, match="known_reward=True is invalid"):
            algo.Config.for_env(env="MountainCarContinuous-v0", known_reward=True)
    config_ = algo.Config.for_env(total_steps=algo.Config.for_env().initial_random_steps + 1)
    assert config_.num_iterations == 1


def test_field_docs_reads_attribute_sections_inline_shared_and_inherited():
    from flax import struct

    from purembrl.config import describe, field_docs, static

    @struct.dataclass
    class Base:
        """Base.

        Attributes:
          a: the first. More about a.
          b, c: two fields at once (one entry). d: inline after a sentence.
        """

        a: int = static(1)
        b: int = static(2)
        c: int = static(3)
        d: float = 0.5

    @struct.dataclass
    class Child(Base):
        """Child.

        Attributes:
          a: overridden here (e.g. for a child's own meaning). Not this sentence.
          e: a list ... with an ellipsis. Not this.
        """

        e: str = static("x")
        f: int = static(0)

    docs = field_docs(Child)
    assert docs == {"a": "overridden here (e.g. for a child's own meaning).",
                    "b": "two fields at once (one entry).", "c": "two fields at once (one entry).",
                    "d": "inline after a sentence.", "e": "a list ... with an ellipsis.", "f": ""}
    lines = describe(Child())
    assert lines[0].startswith("a = 1 ") and lines[0].endswith("# overridden here (e.g. for a "
                                                               "child's own meaning).")
    assert lines[-1] == "f = 0"  # undocumented: no comment


def test_update_merges_nested_dicts_into_the_preset_where_replace_replaces():
    """``config.update(c, model={...})`` merges like ``--set model.x=``; ``replace`` with an
    object replaces the whole nested config (issue 22's dropped preset field)."""
    from purembrl.algos import mbpo
    from purembrl.config import update
    from purembrl.dynamics import EnsembleConfig

    preset = mbpo.Config.for_env("Pendulum-v1")
    assert preset.model.batch_size == 32 != EnsembleConfig().batch_size  # the preset's
    merged = update(preset, model={"num_members": 5, "num_elites": 3},
                    total_steps=preset.total_steps + 1)
    assert merged.model == preset.model.replace(num_members=5, num_elites=3)
    assert merged.model.batch_size == 32  # kept
    assert merged.total_steps == preset.total_steps + 1
    replaced = preset.replace(model=EnsembleConfig(num_members=5, num_elites=3))
    assert replaced.model.batch_size == 256  # the class default: the preset's 32 is gone
    with pytest.raises(ValueError, match="unknown field 'model.nope': EnsembleConfig has no"):
        update(preset, model={"nope": 1})
    with pytest.raises(ValueError, match=r"^model.num_members=0 is invalid"):
        update(preset, model={"num_members": 0})
    with pytest.raises(ValueError, match="total_steps holds no config"):
        update(preset, total_steps={"a": 1})
    with pytest.raises(ValueError, match="learner is None, nothing to merge into"):
        update(preset.replace(learner=None), learner={"actor_lr": 1e-4})
    with pytest.raises(ValueError, match=r"purembrl.config.update\(config, model="):
        preset.replace(model={"num_members": 5})  # a dict is refused by the constructor
