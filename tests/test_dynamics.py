import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import buffer, dynamics
from purembrl.types import Transition

from .helpers import seed_slice

SMALL = dict(num_members=4, num_elites=2, hidden_sizes=(32, 32), batch_size=64,
             weight_decay=0.0, max_epochs=60, patience=5, learning_rate=3e-3)

A = np.array([[0.9, 0.2, 0.0], [-0.1, 0.8, 0.3], [0.0, -0.2, 0.95]], np.float32)
B = np.array([[0.5], [0.0], [-0.3]], np.float32)
C = np.array([1.0, -2.0, 0.5], np.float32)


def linear_transitions(key, n):
    """s' = A s + B a, r = C . s; terminated when s[0] > 2.5 (rare)."""
    key_s, key_a = jax.random.split(key)
    obs = jax.random.normal(key_s, (n, 3))
    action = jax.random.uniform(key_a, (n, 1), minval=-1, maxval=1)
    next_obs = obs @ A.T + action @ B.T
    return Transition(obs=obs, action=action, reward=obs @ C, next_obs=next_obs,
                      terminated=obs[:, 0] > 2.5)


def filled_buffer(transitions, capacity):
    state = buffer.init(seed_slice(transitions, 0), capacity)
    return buffer.add(state, transitions)


def test_gaussian_nll_against_hand_computed_values():
    mean = jnp.array([0.0, 1.0])
    logvar = jnp.array([0.0, math.log(4.0)])
    target = jnp.array([1.0, 3.0])
    expected = 0.5 * (1.0 + 0.0 + 4.0 / 4.0 + math.log(4.0) + 2 * math.log(2 * math.pi))
    assert float(dynamics.gaussian_nll(mean, logvar, target)) == pytest.approx(expected)
    with pytest.raises(AssertionError):
        dynamics.gaussian_nll(mean, logvar, jnp.zeros(3))


def test_logvar_bounds_against_hand_computed_values():
    softplus = lambda x: math.log1p(math.exp(x))
    hi, lo = 0.5, -10.0
    for raw in (-20.0, -3.0, 0.0, 0.4, 5.0):
        step = hi - softplus(hi - raw)
        expected = lo + softplus(step - lo)
        got = float(dynamics.bound_logvar(jnp.array(raw), jnp.array(hi), jnp.array(lo)))
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)
        assert lo < got < hi
    # far inside the bounds the clamp is nearly the identity
    assert float(dynamics.bound_logvar(jnp.array(-4.0), jnp.array(hi), jnp.array(lo))) == \
        pytest.approx(-4.0, abs=0.01)


def test_fit_recovers_a_linear_system():
    config = dynamics.EnsembleConfig(**SMALL)
    data = linear_transitions(jax.random.key(0), 3000)
    state = dynamics.init(jax.random.key(1), config, obs_dim=3, action_dim=1)
    state, info = jax.jit(dynamics.fit, static_argnums=3)(state, filled_buffer(data, 4000),
                                                          jax.random.key(2), config)
    assert not bool(info["nonfinite"])
    assert int(info["num_holdout"]) == 600 and int(info["num_train"]) == 2400
    assert float(np.max(info["val_mse"])) < 2e-3  # standardised units
    # on fresh data, the elites' means predict [reward, delta obs] in original units
    test = linear_transitions(jax.random.key(3), 500)
    # predict and sample under jit: one program each, not a compile per operation
    mean, logvar = jax.jit(dynamics.predict, static_argnums=1)(state, config, test.obs,
                                                                test.action)
    assert mean.shape == (4, 500, 4) and logvar.shape == (4, 500, 4)
    truth = np.concatenate([np.asarray(test.reward)[:, None],
                            np.asarray(test.next_obs - test.obs)], axis=1)
    elite_mean = np.asarray(mean)[np.asarray(state.elites)]
    rmse = np.sqrt(((elite_mean - truth) ** 2).mean(axis=(0, 1)))
    scale = truth.std(axis=0)
    assert np.all(rmse < 0.05 * scale), (rmse, scale)
    # sampled steps: next_obs itself, near the truth
    sample = jax.jit(lambda s, *args: dynamics.sample_step(s, config, *args,
                                                            deterministic=True))
    next_obs, reward, terminated = sample(state, jax.random.key(4), test.obs, test.action)
    np.testing.assert_allclose(np.asarray(next_obs), np.asarray(test.next_obs),
                               atol=0.1 * float(scale[1:].max()))
    assert reward.shape == (500,) and terminated.dtype == bool


@pytest.mark.parametrize("rows", [900, 3000])
def test_holdout_score_covers_every_held_out_row(rows):
    """``val_mse`` (scored in chunks of ``VAL_CHUNK`` rows, only the chunks holding real rows)
    equals the holdout MSE of the kept parameters computed directly over all held-out rows:
    180 of them (one partial chunk) and 600 (three chunks, the last partial), in a buffer
    whose static holdout bound is far larger."""
    config = dynamics.EnsembleConfig(**{**SMALL, "max_epochs": 1})
    data = linear_transitions(jax.random.key(0), rows)
    state = dynamics.init(jax.random.key(1), config, 3, 1)
    key = jax.random.key(2)
    fitted, info = dynamics.fit(state, filled_buffer(data, 20_000), key, config)
    num_holdout = int(info["num_holdout"])
    assert num_holdout == int(rows * 0.2)
    # the split fit draws: the filled rows in the order of uniform draws from its first key
    key_split = jax.random.split(key, 3)[0]
    filled = jnp.arange(20_000) < rows
    order = jnp.argsort(jnp.where(filled, jax.random.uniform(key_split, (20_000,)), 2.0))
    held = np.asarray(order[:num_holdout])
    assert held.max() < rows
    x = dynamics.model_inputs(data.obs[held], data.action[held], 1)
    y = (dynamics.model_targets(jax.tree.map(lambda v: v[held], data), True)
         - fitted.normalizer.out_mean) / fitted.normalizer.out_std
    mean, _, _ = dynamics.raw_outputs(fitted, config, fitted.params, fitted.normalizer,
                                       jnp.broadcast_to(x, (4, *x.shape)))
    direct = np.asarray(jnp.mean((mean - y) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(np.asarray(info["val_mse"]), direct, rtol=1e-4)


def test_elites_are_the_lowest_error_members():
    config = dynamics.EnsembleConfig(**{**SMALL, "learning_rate": 1e-9, "max_epochs": 1})
    data = linear_transitions(jax.random.key(0), 1000)
    state = dynamics.init(jax.random.key(1), config, 3, 1)
    # spoil members 0 and 3: their outputs become huge
    net = jax.tree.map(lambda x: x.at[jnp.array([0, 3])].multiply(50.0), state.params["net"])
    state = state.replace(params={**state.params, "net": net})
    state, info = dynamics.fit(state, filled_buffer(data, 1000), jax.random.key(2), config)
    val = np.asarray(info["val_mse"])
    elites = np.asarray(info["elites"])
    np.testing.assert_array_equal(elites, np.argsort(val)[:2])
    assert not {0, 3} & set(elites.tolist())
    np.testing.assert_array_equal(np.asarray(state.elites), elites)


def test_masked_growing_buffer_fits_like_the_filled_rows_alone():
    config = dynamics.EnsembleConfig(**{**SMALL, "max_epochs": 5})
    data = linear_transitions(jax.random.key(0), 1500)
    state = dynamics.init(jax.random.key(1), config, 3, 1)
    fit = jax.jit(dynamics.fit, static_argnums=3)
    exact, info_exact = fit(state, filled_buffer(data, 1500), jax.random.key(2), config)
    roomy, info_roomy = fit(state, filled_buffer(data, 6000), jax.random.key(2), config)
    assert int(info_exact["epochs"]) == int(info_roomy["epochs"])
    np.testing.assert_allclose(np.asarray(info_exact["val_mse"]),
                               np.asarray(info_roomy["val_mse"]), rtol=1e-3)
    for a, b in zip(jax.tree.leaves(exact.params), jax.tree.leaves(roomy.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)
    # and the growing buffer does not recompile: a different fill level, same shapes
    more = buffer.add(filled_buffer(data, 6000), linear_transitions(jax.random.key(5), 100))
    compiled = fit._cache_size()
    fit(state, more, jax.random.key(2), config)
    assert fit._cache_size() == compiled  # one compile per buffer capacity, none per fill


def test_sgd_blocks_give_the_same_fit_as_one_step_per_iteration():
    # sgd_block only regroups an epoch's SGD steps (the steps past its end masked out), so the
    # fit is the same: 1500 rows, 80% training = 19 minibatches of 64 per epoch, which neither
    # 4 nor 16 divides; under vmap the seeds' buffers differ in size, so their epochs in length
    config = dynamics.EnsembleConfig(**{**SMALL, "max_epochs": 4})
    data = linear_transitions(jax.random.key(0), 1500)
    state = dynamics.init(jax.random.key(1), config, 3, 1)
    full = filled_buffer(data, 1500)
    buffers = jax.tree.map(lambda *x: jnp.stack(x), full, full.replace(size=jnp.int32(900)))
    keys = jax.random.split(jax.random.key(2), 2)

    def fit(block):
        fit_one = lambda b, k: dynamics.fit(state, b, k, config.replace(sgd_block=block))
        return jax.jit(jax.vmap(fit_one))(buffers, keys)

    (reference, info), *others = [fit(block) for block in (1, 4, 16)]
    assert int(info["num_train"][0]) == 1200 and int(info["num_train"][1]) == 720
    for blocked, blocked_info in others:
        np.testing.assert_array_equal(np.asarray(info["epochs"]),
                                      np.asarray(blocked_info["epochs"]))
        np.testing.assert_allclose(np.asarray(info["train_nll"]),
                                   np.asarray(blocked_info["train_nll"]), rtol=1e-5)
        for a, b in zip(jax.tree.leaves(reference.params), jax.tree.leaves(blocked.params),
                        strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sgd_block=0 is invalid"):
        dynamics.EnsembleConfig(sgd_block=0)


def test_nonfinite_data_is_reported_and_not_used():
    config = dynamics.EnsembleConfig(**{**SMALL, "max_epochs": 3})
    data = linear_transitions(jax.random.key(0), 500)
    data = data.replace(next_obs=data.next_obs.at[10, 1].set(jnp.nan))
    state = dynamics.init(jax.random.key(1), config, 3, 1)
    new, info = dynamics.fit(state, filled_buffer(data, 500), jax.random.key(2), config)
    assert bool(info["nonfinite"])
    # no member improved on a finite loss, so every member keeps its pre-fit parameters
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_extreme_scales_and_constant_features_stay_finite():
    config = dynamics.EnsembleConfig(**{**SMALL, "max_epochs": 3})
    data = linear_transitions(jax.random.key(0), 800)
    data = data.replace(obs=data.obs.at[:, 2].set(7.0) * 1e6, next_obs=data.next_obs * 1e6)
    state = dynamics.init(jax.random.key(1), config, 3, 1)
    new, info = dynamics.fit(state, filled_buffer(data, 800), jax.random.key(2), config)
    assert not bool(info["nonfinite"])
    mean, logvar = dynamics.predict(new, config, data.obs[:5], data.action[:5])
    assert np.isfinite(np.asarray(mean)).all() and np.isfinite(np.asarray(logvar)).all()


def test_known_reward_and_termination_functions_replace_the_model():
    config = dynamics.EnsembleConfig(**{**SMALL, "learn_reward": False,
                                        "learn_termination": False, "max_epochs": 2})
    data = linear_transitions(jax.random.key(0), 300)
    state = dynamics.init(jax.random.key(1), config, 3, 1)
    state, _ = dynamics.fit(state, filled_buffer(data, 300), jax.random.key(2), config)
    mean, _ = dynamics.predict(state, config, data.obs[:4], data.action[:4])
    assert mean.shape == (4, 4, 3)  # delta obs only
    with pytest.raises(ValueError, match="reward_fn"):
        dynamics.sample_step(state, config, jax.random.key(3), data.obs[:4], data.action[:4])
    reward_fn = lambda obs, action, next_obs: -jnp.sum(next_obs ** 2, axis=-1)
    done_fn = lambda obs, action, next_obs: next_obs[:, 0] > 0.0
    next_obs, reward, terminated = dynamics.sample_step(
        state, config, jax.random.key(3), data.obs[:4], data.action[:4], reward_fn=reward_fn,
        termination_fn=done_fn)
    np.testing.assert_allclose(np.asarray(reward), -np.sum(np.asarray(next_obs) ** 2, -1),
                               rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(terminated), np.asarray(next_obs[:, 0] > 0))


def test_discrete_actions_are_one_hot_encoded():
    np.testing.assert_array_equal(np.asarray(dynamics.one_hot_actions(jnp.array([2, 0]), 3)),
                                  [[0, 0, 1], [1, 0, 0]])
    x = dynamics.model_inputs(jnp.zeros((2, 4)), jnp.array([1, 0]), 2)
    np.testing.assert_array_equal(np.asarray(x[:, 4:]), [[0, 1], [1, 0]])
    x = dynamics.model_inputs(jnp.zeros((2, 4)), jnp.array([[0.5], [-0.5]]), 1)
    assert x.shape == (2, 5)


def test_default_weight_decay_follows_the_depth():
    """MBPO's decays for 4 hidden layers; another depth (also after ``replace``, as the
    command line does) gets its own, from 2.5e-5 to 1e-4."""
    assert dynamics.layer_decays(dynamics.EnsembleConfig()) == (2.5e-5, 5e-5, 7.5e-5, 7.5e-5,
                                                                1e-4)
    shallow = dynamics.EnsembleConfig().replace(hidden_sizes=(16,))
    np.testing.assert_allclose(dynamics.layer_decays(shallow), (2.5e-5, 1e-4))
    assert dynamics.layer_decays(shallow.replace(weight_decay=0.5)) == (0.5, 0.5)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="num_elites=8 is invalid"):
        dynamics.EnsembleConfig(num_members=7, num_elites=8)
    with pytest.raises(ValueError, match="hidden_sizes"):
        dynamics.EnsembleConfig(hidden_sizes=(200, 0))
    with pytest.raises(ValueError, match="weight_decay"):
        dynamics.EnsembleConfig(hidden_sizes=(8, 8), weight_decay=(0.1,))
    with pytest.raises(ValueError, match="holdout_ratio=1.0 is invalid"):
        dynamics.EnsembleConfig(holdout_ratio=1.0)
    with pytest.raises(ValueError, match="obs_dim=0"):
        dynamics.init(jax.random.key(0), dynamics.EnsembleConfig(), 0, 1)


def test_init_fit_and_sample_under_jit_vmap_over_seeds():
    config = dynamics.EnsembleConfig(**{**SMALL, "max_epochs": 3})

    def run(key):
        key_data, key_init, key_fit, key_sample = jax.random.split(key, 4)
        data = linear_transitions(key_data, 400)
        state = dynamics.init(key_init, config, 3, 1)
        state, info = dynamics.fit(state, filled_buffer(data, 512), key_fit, config)
        next_obs, reward, _ = dynamics.sample_step(state, config, key_sample, data.obs[:8],
                                                   data.action[:8])
        return next_obs, info["val_mse"]

    keys = jax.random.split(jax.random.key(0), 3)
    next_obs, val = jax.jit(jax.vmap(run))(keys)
    assert next_obs.shape == (3, 8, 3) and val.shape == (3, 4)
    again, _ = jax.jit(jax.vmap(run))(keys)
    np.testing.assert_array_equal(np.asarray(next_obs), np.asarray(again))
    assert not np.allclose(np.asarray(next_obs[0]), np.asarray(next_obs[1]))


def test_a_config_that_does_not_describe_the_state_is_refused():
    """The state holds arrays and the data's sizes; the network's structure is the config's.
    A config whose members, widths or heads do not fit the arrays is refused by ``fit``,
    ``predict`` and ``sample_step``, naming every field that differs, before anything is
    traced; an activation cannot be read from the arrays, and is the config's."""
    config = dynamics.EnsembleConfig(**SMALL)
    state = dynamics.init(jax.random.key(0), config, 3, 1)
    replay = buffer.init(Transition(jnp.zeros(3), jnp.zeros(1), jnp.zeros(()), jnp.zeros(3),
                                    jnp.zeros((), bool)), 10)
    obs, action = jnp.array([[0.5, -1.0, 2.0], [-0.3, 0.2, 0.1]]), jnp.ones((2, 1))
    for other, named in [(dict(num_members=5), "num_members=5 (the state's: 4)"),
                         (dict(hidden_sizes=(16, 32), learn_termination=False),
                          "hidden_sizes=(16, 32) (the state's: (32, 32)), "
                          "learn_termination=False (the state's: True)"),
                         (dict(learn_reward=False), "learn_reward=False (the state's: True)")]:
        wrong = config.replace(**other)
        for call in (lambda w=wrong: dynamics.fit(state, replay, jax.random.key(1), w),
                     lambda w=wrong: dynamics.predict(state, w, obs, action),
                     lambda w=wrong: dynamics.sample_step(state, w, jax.random.key(1), obs,
                                                          action)):
            with pytest.raises(ValueError, match=re.escape(named)):
                call()
    relu = config.replace(activation="relu")
    mean, _ = dynamics.predict(state, relu, obs, action)
    assert not np.array_equal(mean, dynamics.predict(state, config, obs, action)[0])
