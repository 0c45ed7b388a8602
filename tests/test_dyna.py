"""Deep Dyna with expected targets over K model samples (purembrl.algos.dyna)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import dynamics, envs, interact
from purembrl.algos import dyna
from purembrl.envs import known
from purembrl.learners import NAFConfig, SACConfig, sac
from purembrl.types import Transition


def test_learns_cartpole_on_a_small_budget_under_jit_vmap():
    """Double DQN on K = 5 model samples per (s, a), with a small ensemble and the preset's
    10-step heads and planned actions, under jit(vmap): seeds differ, keys repeat, and it
    learns beyond random (a random policy lasts about 22 steps). One call on keys (k0, k1, k0):
    the repeated key gives the identical run in the same batch (the golden tests check that
    a second call repeats the first, bit for bit). Measured (2500 env steps, 2026-12-07):
    best evaluations 351 and 500, the same as at 3500 steps (265 and 500 when the batch is the
    two keys alone: the last bits of a run can depend on the batch, which training amplifies;
    tests/golden_cases.py); on ``split(key(1), 2)`` 194 and 286. (Pendulum learns too, -120
    and -134 after 1750 steps, but takes minutes on 2 cores.)"""
    cfg = dyna.Config.for_env(env="CartPole-v1", total_steps=2500,
                              model=dynamics.EnsembleConfig(num_members=5, num_elites=3,
                                                    hidden_sizes=(64, 64), max_epochs=20))
    keys = jax.random.split(jax.random.key(0), 2)
    _, m = jax.jit(jax.vmap(dyna.make_train(cfg)))(jnp.concatenate([keys, keys[:1]]))
    for name, values in m.items():
        np.testing.assert_array_equal(values[0], values[2], err_msg=name)
    assert not np.array_equal(m["q_loss"][0], m["q_loss"][1])
    best = np.asarray(m["eval_return"]).max(axis=1)
    print("Dyna-DQN best returns:", best)
    assert (best > 150).all(), np.asarray(m["eval_return"])
    assert not np.asarray(m["model_nonfinite"]).any()


def test_model_batch_draws_k_next_states_per_pair():
    model_cfg = dynamics.EnsembleConfig(num_members=3, num_elites=2, hidden_sizes=(16,))
    model = dynamics.init(jax.random.key(0), model_cfg, obs_dim=3, action_dim=1)
    step = dynamics.make_model_step(model, model_cfg)
    real = Transition(obs=jnp.ones((4, 3)), action=jnp.zeros((4, 1)), reward=jnp.zeros(4),
                      next_obs=jnp.ones((4, 3)), terminated=jnp.zeros(4, bool))
    batch = dyna.model_batch(step, jax.random.key(1), real, 6)
    assert batch.next_obs.shape == (4, 6, 3) and batch.reward.shape == (4, 6)
    assert batch.terminated.shape == (4, 6) and batch.obs.shape == (4, 3)
    # the K draws of one (s, a) differ (sampled members and noise)
    assert float(jnp.std(batch.next_obs[0], axis=0).max()) > 0


def test_config_errors():
    with pytest.raises(ValueError, match="learner=SACConfig is invalid for this env"):
        dyna.make_train(dyna.Config.for_env(env="CartPole-v1", learner=SACConfig()))
    with pytest.raises(ValueError, match="eval_every=0"):
        dyna.Config.for_env(env="Pendulum-v1", eval_every=0)
    with pytest.raises(ValueError, match="num_next_samples"):
        dyna.Config.for_env(env="Pendulum-v1", num_next_samples=0)


def test_naf_takes_k_sample_batches_and_k_copies_give_the_one_sample_update():
    """NAF takes deep Dyna's K-sample batches: K copies of the same s' make the expected target
    the one-sample target, so the update is the one-sample update."""
    from purembrl import learners
    from purembrl.interact import EnvSpec

    spec = EnvSpec(obs_dim=3, discrete=False, num_actions=1, action_low=-2 * np.ones(1),
                   action_high=2 * np.ones(1), max_steps=200)
    naf = learners.make(NAFConfig(hidden_sizes=(8,)), spec)
    state = naf.init(jax.random.key(0))
    k = jax.random.split(jax.random.key(1), 4)
    one = Transition(obs=jax.random.normal(k[0], (16, 3)),
                     action=jax.random.uniform(k[1], (16, 1), minval=-2, maxval=2),
                     reward=jax.random.normal(k[2], (16,)),
                     next_obs=jax.random.normal(k[3], (16, 3)),
                     terminated=jnp.zeros(16, bool))
    many = one.replace(reward=jnp.repeat(one.reward[:, None], 4, 1),
                       next_obs=jnp.repeat(one.next_obs[:, None], 4, 1),
                       terminated=jnp.zeros((16, 4), bool))
    new_many, info_many = naf.update(state, many, jax.random.key(2))
    new_one, info_one = naf.update(state, one, jax.random.key(2))
    np.testing.assert_allclose(info_many["q_loss"], info_one["q_loss"], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 new_many.params, new_one.params)
    # and a different s' among the K changes the target: the samples are used
    other = many.replace(next_obs=many.next_obs.at[:, 0].add(1.0))
    _, info_other = naf.update(state, other, jax.random.key(2))
    assert not np.allclose(info_other["q_loss"], info_one["q_loss"])


def test_k_sampled_next_states_divide_the_targets_variance_by_k_on_a_stochastic_task():
    """On NoisyPendulum-v1 (random transitions) the expected target over K independent draws of
    s' (and of SAC's a') has 1/K of the one-draw target's variance, pair by pair: the notes'
    reason for K > 1. Through the true dynamics, so the closed form is exact: the variance
    ratio of K = 5 to K = 1 over 400 draws is 1/5 (the bounds, +-15%, are about 7 standard
    errors of the ratio)."""
    env, params = envs.make("NoisyPendulum-v1")
    spec = interact.spec(env, params)
    config = dyna.Config.for_env(env="NoisyPendulum-v1")
    nets = sac.sac_nets(config.learner, spec.action_low, spec.action_high)
    learner = sac.make_sac(config.learner, spec.obs_dim, spec.action_low, spec.action_high)
    state = learner.init(jax.random.key(0))
    angle = jax.random.uniform(jax.random.key(1), (32,), minval=-3.0, maxval=3.0)
    obs = jnp.stack([jnp.cos(angle), jnp.sin(angle), jnp.linspace(-4.0, 4.0, 32)], axis=1)
    real = Transition(obs=obs, action=jnp.linspace(-2.0, 2.0, 32)[:, None],
                      reward=jnp.zeros(32), next_obs=obs, terminated=jnp.zeros(32, bool))
    model_step = known.true_model_step("NoisyPendulum-v1")

    @functools.partial(jax.jit, static_argnums=0)  # one program per K, not op by op
    def variance(k):
        def draw(key):
            key_model, key_policy = jax.random.split(key)
            batch = dyna.model_batch(model_step, key_model, real, k)
            return sac.critic_regression(nets, config.learner.gamma, state, batch, key_policy,
                                         jnp.float32(0.2))[2]
        return jax.vmap(draw)(jax.random.split(jax.random.key(k), 400)).var(axis=0)  # [32]

    one, five = variance(1), variance(5)
    assert (one > 0).all()
    ratio = float(five.mean() / one.mean())
    print(f"variance ratio K = 5 / K = 1: {ratio:.3f}")
    assert 0.17 < ratio < 0.23, ratio


def test_n_step_dyna_targets_through_the_true_dynamics_are_the_real_n_step_targets():
    """Deep Dyna with n_step = 4: the real return before the last step plus the model's
    expectation over the last step's next state. CartPole is deterministic, so through its true
    dynamics every one of the K draws is the stored next state and the batch's targets are
    ``sample_n_step``'s n-step targets (windows cut at episode ends and at the newest row)."""
    from purembrl import buffer
    from purembrl.learners.dqn import dqn_targets
    from purembrl.networks import MLP

    cfg = dyna.Config.for_env(env="CartPole-v1", total_steps=700, eval_every=700,
                              initial_random_steps=600, eval_episodes=1, n_step=4,
                              true_dynamics=True, updates_per_step=1, num_next_samples=3)
    state, m = jax.jit(dyna.make_train(cfg))(jax.random.key(0))
    assert np.isfinite(np.asarray(m["q_loss"])).all()
    replay, gamma, key = state.replay, cfg.learner.gamma, jax.random.key(5)
    assert int(replay.data.episode_end.sum()) > 10  # many windows are cut by episode ends
    head, last = buffer.sample_n_step_head(replay, key, 512, 4, gamma)
    batch = dyna.n_step_batch(known.true_model_step("CartPole-v1"), jax.random.key(6), head,
                              last, 3, gamma)
    full = buffer.sample_n_step(replay, key, 512, 4, gamma)
    assert batch.reward.shape == (512, 3) and batch.next_obs.shape == (512, 3, 4)
    np.testing.assert_allclose(batch.discount, full.discount, rtol=1e-6)
    assert len(np.unique(np.asarray(full.discount))) == 4  # m = 1, 2, 3 and 4 all occur
    for k in range(3):
        np.testing.assert_allclose(batch.reward[:, k], full.reward, rtol=1e-6)
        np.testing.assert_allclose(batch.next_obs[:, k], full.next_obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(batch.terminated[:, k], full.terminated)
    net = MLP(cfg.learner.hidden_sizes, 2, cfg.learner.activation)
    np.testing.assert_allclose(dqn_targets(net, cfg.learner, state.learner, batch),
                               dqn_targets(net, cfg.learner, state.learner, full),
                               rtol=1e-5, atol=1e-5)


def test_other_actions_batch_plans_every_action_not_taken():
    """``all_actions``' extra pairs: for each (s, a) every other action a' at the same s, with
    the model's draws at (s, a'); through Acrobot's true dynamics (3 actions) the K draws are
    the env's own step from s under a'."""
    model_step = known.true_model_step("Acrobot-v1")
    env, params = envs.make("Acrobot-v1")
    obs = jax.vmap(lambda k: env.reset(k, params)[0])(jax.random.split(jax.random.key(0), 5))
    taken = Transition(obs=obs, action=jnp.array([0, 1, 2, 2, 0]), reward=jnp.zeros(5),
                       next_obs=obs, terminated=jnp.zeros(5, bool))
    other = dyna.other_actions_batch(model_step, jax.random.key(1), taken, 3, 2, 0.9)
    # block j acts (a + j) mod 3: every action but the taken one, once per state
    np.testing.assert_array_equal(other.action, [1, 2, 0, 0, 1, 2, 0, 1, 1, 2])
    np.testing.assert_array_equal(other.obs, np.tile(np.asarray(obs), (2, 1)))
    assert other.next_obs.shape == (10, 2, 6) and other.reward.shape == (10, 2)
    expected, reward, _ = model_step(jax.random.key(2), other.obs, other.action)
    for k in range(2):
        np.testing.assert_allclose(other.next_obs[:, k], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(other.reward[:, k], reward)
    np.testing.assert_allclose(other.discount, 0.9)
    assert dyna.other_actions_batch(model_step, jax.random.key(1), taken, 3, 2,
                                    None).discount is None


def test_n_step_and_true_dynamics_are_validated():
    with pytest.raises(ValueError, match="n_step=0"):
        dyna.Config.for_env(env="CartPole-v1", n_step=0)
    with pytest.raises(ValueError, match="n_step=3 is invalid: n-step returns are implemented "
                                         "for DQN learners only, not SACConfig"):
        dyna.make_train(dyna.Config.for_env(env="Pendulum-v1", n_step=3))
    with pytest.raises(ValueError, match="all_actions=True is invalid for Pendulum-v1"):
        dyna.make_train(dyna.Config.for_env(env="Pendulum-v1", all_actions=True))
    with pytest.raises(ValueError, match="true_dynamics=True is invalid for "
                                         "env='MountainCarContinuous-v0'"):
        dyna.Config.for_env(env="MountainCarContinuous-v0", true_dynamics=True)
