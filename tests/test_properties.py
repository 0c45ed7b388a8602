"""Property-based tests (hypothesis): the replay buffer against a plain Python model, losses on
arbitrary finite inputs, and config validation on arbitrary field values."""

import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from purembrl import buffer, classifier, dynamics, value
from purembrl.algos import dqn, mbpo, sac
from purembrl.learners import SACConfig

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# --- the buffer vs a Python list ------------------------------------------------------------

adds = st.lists(  # each add: a batch of values with a validity mask
    st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), min_size=1, max_size=9),
    min_size=1, max_size=12)


@jax.jit
def _add(state, values, mask):
    return buffer.add(state, {"x": values}, mask)


@FAST
@given(capacity=st.integers(1, 7), batches=adds)
def test_buffer_matches_a_python_ring_buffer(capacity, batches):
    state = buffer.init({"x": jnp.zeros((), jnp.int32)}, capacity)
    model, insert = [None] * capacity, 0  # the same ring, item by item
    size = 0
    for batch in batches:
        values = jnp.array([v for v, _ in batch], jnp.int32)
        mask = jnp.array([m for _, m in batch])
        state = _add(state, values, mask)
        for v, m in batch:
            if m:
                model[insert] = v
                insert = (insert + 1) % capacity
                size = min(size + 1, capacity)
    assert int(state.size) == size and int(state.insert) == insert
    stored = np.asarray(state.data["x"])
    for i, v in enumerate(model):
        if v is not None:
            assert stored[i] == v
    if size:
        drawn = np.asarray(buffer.sample(state, jax.random.key(len(batches)), 64)["x"])
        filled = {v for v in model if v is not None}
        assert set(drawn.tolist()) <= filled  # only filled entries are ever sampled


# --- losses: finite in, finite out, the documented shapes ---------------------------------

def floats(shape, low=-1e3, high=1e3):
    return hnp.arrays(np.float32, shape, elements=st.floats(low, high, width=32))


@FAST
@given(q=floats((16, 2)), target=floats((16,)), log_prob=floats((16,), -50, 50),
       alpha=st.floats(1e-4, 10.0))
def test_sac_losses_are_finite_per_transition(q, target, log_prob, alpha):
    """The losses are per transition (rlax's style); vmapped over a batch they stay finite."""
    q, target, log_prob = jnp.asarray(q), jnp.asarray(target), jnp.asarray(log_prob)
    critic = jax.vmap(value.sac_critic_loss)(q, target)
    actor = jax.vmap(value.sac_actor_loss, in_axes=(0, 0, None))(q, log_prob, alpha)
    temperature = jax.vmap(value.sac_temperature_loss, in_axes=(None, 0, None))(
        jnp.log(alpha), log_prob, -1.0)
    for loss in (critic, actor, temperature):
        assert loss.shape == (16,) and bool(jnp.all(jnp.isfinite(loss)))
    assert bool(jnp.all(critic >= 0))


@FAST
@given(q=floats((16,)), target=floats((16,)), kind=st.sampled_from(["huber", "mse"]))
def test_td_loss_is_finite_non_negative_and_zero_on_target(q, target, kind):
    loss = value.td_loss(jnp.asarray(q), jnp.asarray(target), kind)
    assert loss.shape == (16,) and bool(jnp.all(jnp.isfinite(loss))) and bool(jnp.all(loss >= 0))
    assert float(jnp.max(value.td_loss(jnp.asarray(q), jnp.asarray(q), kind))) == 0.0


@FAST
@given(mean=floats((3, 8, 4), -100, 100), logvar=floats((3, 8, 4), -40, 40),
       target=floats((3, 8, 4), -100, 100))
def test_gaussian_nll_is_finite_for_any_finite_prediction(mean, logvar, target):
    nll = dynamics.gaussian_nll(jnp.asarray(mean), jnp.asarray(logvar), jnp.asarray(target))
    assert bool(jnp.all(jnp.isfinite(nll)))


@FAST
@given(next_logit=floats((16,), -1e4, 1e4), goal_logit=floats((16,), -1e4, 1e4),
       next_goal_logit=floats((16,), -1e4, 1e4), gamma=st.floats(0.0, 0.999))
def test_td_classifier_loss_and_gradient_are_finite(next_logit, goal_logit, next_goal_logit,
                                                     gamma):
    """Finite loss and gradients for logits far past float32's exp overflow (88.7), without
    ``max_weight``: the bootstrapped weight's exponent is capped (``LOG_WEIGHT_CAP``)."""
    def loss(n, g, ng):
        return classifier.td_classifier_loss(n, g, ng, gamma)

    args = (jnp.asarray(next_logit), jnp.asarray(goal_logit), jnp.asarray(next_goal_logit))
    value = jax.vmap(loss)(*args)
    grads = jax.vmap(jax.grad(loss, argnums=(0, 1)))(*args)
    assert value.shape == (16,) and bool(jnp.all(jnp.isfinite(value)))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


@FAST
@given(logits=floats((16,), -1e4, 1e4), gamma=st.floats(0.0, 0.999))
def test_clipped_td_classifier_loss_is_finite_for_any_logit(logits, gamma):
    x = jnp.asarray(logits)
    loss = jax.vmap(lambda a, b, c: classifier.td_classifier_loss(a, b, c, gamma,
                                                                  max_weight=20.0))(
        x, x[::-1], jnp.roll(x, 3))
    assert bool(jnp.all(jnp.isfinite(loss)))


@FAST
@given(logits=floats((8, 8), -1e3, 1e3))
def test_infonce_loss_is_a_finite_non_negative_scalar(logits):
    loss = classifier.infonce_loss(jnp.asarray(logits))
    assert loss.shape == () and bool(jnp.isfinite(loss)) and float(loss) >= 0


# --- config validation: a valid config or a ValueError, never another failure ------------

def field_values():
    return st.one_of(st.integers(-5, 100_000), st.floats(allow_nan=True, allow_infinity=True),
                     st.booleans(), st.none(), st.sampled_from(["relu", "bogus", ""]))


SAC_FIELDS = ["total_steps", "eval_every", "initial_random_steps", "batch_size", "buffer_size",
              "updates_per_step", "eval_episodes"]
MBPO_FIELDS = ["total_steps", "eval_every", "initial_random_steps", "batch_size",
               "updates_per_step", "real_ratio", "model_train_freq", "rollout_freq",
               "rollouts_per_step", "epoch_length", "model_retain_epochs"]
LEARNER_FIELDS = ["actor_lr", "critic_lr", "gamma", "tau", "init_alpha"]


def check_construction(module, build):
    """A config either raises ValueError (at construction, or for a check that needs the env,
    when training is built), or builds and its training state traces (the shapes of ``init``,
    no compile): a bad value never gets past ``make_loop`` to fail later."""
    try:
        config = build()
        loop = module.make_loop(config) if module is not None else None
    except ValueError:
        return
    if loop is not None:
        jax.eval_shape(loop.init, jax.random.key(0))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(SAC_FIELDS), value=field_values())
def test_sac_config_is_valid_or_a_value_error(field, value):
    check_construction(sac, lambda: sac.Config.for_env(env="Pendulum-v1", **{field: value}))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(MBPO_FIELDS), value=field_values())
def test_mbpo_config_is_valid_or_a_value_error(field, value):
    check_construction(mbpo, lambda: mbpo.Config.for_env(env="Pendulum-v1", **{field: value}))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(LEARNER_FIELDS), value=field_values())
def test_learner_config_is_valid_or_a_value_error(field, value):
    check_construction(None, lambda: SACConfig(**{field: value}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gamma=st.floats(allow_nan=True, allow_infinity=True))
def test_discounts_outside_zero_one_are_refused(gamma):
    ok = (not math.isnan(gamma)) and 0.0 <= gamma < 1.0
    if ok:
        SACConfig(gamma=gamma)
        preset = dqn.Config.for_env(env="CartPole-v1")
        preset.replace(learner=preset.learner.replace(gamma=gamma))
    else:
        with pytest.raises(ValueError, match="gamma"):
            SACConfig(gamma=gamma)


# Every other algorithm's numeric fields: the same property, fields read from its Config.
OTHER_ALGORITHMS = ["dyna_q", "dqn", "sf_gpi", "sf_policy_iteration", "c_learning", "dyna",
                    "mbve", "mba"]


def numeric_fields(module):
    from purembrl import config as config_lib
    return sorted(name for name, kind in config_lib.field_types(module.Config).items()
                  if kind in (int, float))


@pytest.mark.parametrize("name", OTHER_ALGORITHMS)
def test_every_algorithm_config_is_valid_or_a_value_error(name):
    from purembrl import algos
    module = algos.get(name)
    env = module.Config.for_env().env

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(field=st.sampled_from(numeric_fields(module)), value=field_values())
    def check(field, value):
        check_construction(module, lambda: module.Config.for_env(env=env, **{field: value}))

    check()


def _config_fields():
    """(class, field, declared type) for every field of every config of the library."""
    import typing

    from purembrl import algos
    from purembrl.learners import DQNConfig, NAFConfig

    classes = [algos.get(n).Config for n in algos.ALGORITHMS]
    classes += [SACConfig, DQNConfig, NAFConfig, dynamics.EnsembleConfig]
    return [(cls, name, kind) for cls in classes
            for name, kind in typing.get_type_hints(cls).items()
            if name in {f.name for f in __import__("dataclasses").fields(cls)}]


_WRONG = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(-1e3, 1e3).filter(
        lambda x: not float(x).is_integer()), st.text(max_size=4),
    st.lists(st.integers(1, 8), max_size=3), st.tuples(st.text(max_size=2)),
    st.dictionaries(st.sampled_from(["actor_lr", "gamma"]), st.floats(0.1, 0.5), max_size=2),
    st.sampled_from([dynamics.EnsembleConfig(), SACConfig()]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(field=st.sampled_from(_config_fields()), value=_WRONG)
def test_a_value_of_the_wrong_type_for_any_field_is_refused_naming_it(field, value):
    """Issue 23: any config refuses a wrong type at construction (``config.check_types``) with a
    ValueError naming the field, never an AttributeError or TypeError later."""
    from hypothesis import assume

    from purembrl.config import _fits, _unwrap_optional, config_choices
    from purembrl.learners import REGISTRY

    cls, name, kind = field
    inner = _unwrap_optional(kind)
    choices = config_choices(inner)
    if len(choices) > 1:  # a learner field: any registered learner's config is of its type
        assume(not (value is None or type(value) in REGISTRY))
    else:
        assume(not _fits(value, kind))
    with pytest.raises(ValueError, match=f"^{name}=.* is invalid"):
        cls(**{name: value})
