"""Model-based value expansion (purembrl.algos.mbve)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import dynamics, value
from purembrl.algos import mbve
from purembrl.learners import (
    CriticTargets,
    DQNConfig,
    SACConfig,
    make_sac,
    normalize_observations,
    normalized,
    observation_stats_update,
    sac_nets,
)
from purembrl.types import Transition

SAC = SACConfig(hidden_sizes=(16, 16))
B, D = 5, 2


def linear_model(key, obs, action):
    """A known deterministic system: s' = 0.9 s + 0.1 a, r = -|s|^2, never terminal."""
    return 0.9 * obs + 0.1 * action, -jnp.sum(obs ** 2, -1), jnp.zeros(obs.shape[0], bool)


def real_batch(key, terminated=None):
    key_obs, key_next, key_action = jax.random.split(key, 3)
    obs = jax.random.normal(key_obs, (B, D))
    return Transition(obs=obs, action=jax.random.uniform(key_action, (B, D), minval=-1),
                      reward=-jnp.sum(obs ** 2, -1), next_obs=jax.random.normal(key_next, (B, D)),
                      terminated=jnp.zeros(B, bool) if terminated is None else terminated)


def learner_state(zero_alpha=False, zero_target=False):
    learner = make_sac(SAC, D, -jnp.ones(D), jnp.ones(D))
    state = learner.init(jax.random.key(0))
    if zero_alpha:
        state = state.replace(log_alpha=jnp.array(-jnp.inf))
    if zero_target:
        state = state.replace(target_critic=jax.tree.map(jnp.zeros_like, state.target_critic))
    return learner, state


def test_horizon_zero_is_the_soft_one_step_target():
    """H = 0: the expanded target is SAC's r + g (min Q'(s', a') - alpha log pi(a'|s'))."""
    nets = sac_nets(SAC, -jnp.ones(D), jnp.ones(D))
    _, state = learner_state()
    real = real_batch(jax.random.key(1))
    key = jax.random.key(2)
    obs, action, target, weight = mbve.expanded_critic_batch(nets, state, real, linear_model,
                                                             key, 0, 0.9)
    next_action, log_prob = nets.sample(state.actor, jax.random.split(key, 1)[0], real.next_obs)
    next_q = nets.critic_values(state.target_critic, real.next_obs, next_action)
    expected = jax.vmap(value.sac_target, in_axes=(0, 0, None, 1, 0, None))(
        real.reward, real.terminated, 0.9, next_q, log_prob, jnp.exp(state.log_alpha))
    np.testing.assert_allclose(target, expected, rtol=1e-6)
    np.testing.assert_array_equal(obs, real.obs)
    np.testing.assert_array_equal(action, real.action)
    np.testing.assert_array_equal(weight, 1.0)


def test_expansion_follows_the_model_and_sums_discounted_rewards():
    """With alpha = 0 and a zero target critic, G_t = sum_k g^(k-t) r_k along the path, and
    the path obeys the model: a hand-unrolled check of every target for H = 3."""
    nets = sac_nets(SAC, -jnp.ones(D), jnp.ones(D))
    _, state = learner_state(zero_alpha=True, zero_target=True)
    real = real_batch(jax.random.key(3))
    H, g = 3, 0.9
    obs, action, target, weight = mbve.expanded_critic_batch(nets, state, real, linear_model,
                                                             jax.random.key(4), H, g)
    obs, action = obs.reshape(H + 1, B, D), action.reshape(H + 1, B, D)
    target = np.asarray(target).reshape(H + 1, B)
    np.testing.assert_allclose(obs[1], real.next_obs, rtol=1e-6)
    for t in range(1, H):
        np.testing.assert_allclose(obs[t + 1], 0.9 * obs[t] + 0.1 * action[t], rtol=1e-5)
    rewards = np.stack([np.asarray(real.reward)]
                       + [-np.sum(np.asarray(obs[t]) ** 2, -1) for t in range(1, H + 1)])
    for t in range(H + 1):
        expected = sum(g ** (k - t) * rewards[k] for k in range(t, H + 1))
        np.testing.assert_allclose(target[t], expected, rtol=1e-5)
    np.testing.assert_array_equal(weight, 1.0)
    # without the TD-k trick only the real pair is trained, on the same H-step target
    *_, target_no_k, weight_no_k = mbve.expanded_critic_batch(
        nets, state, real, linear_model, jax.random.key(4), H, g, td_k=False)
    np.testing.assert_array_equal(np.asarray(weight_no_k).reshape(H + 1, B)[1:], 0.0)
    np.testing.assert_allclose(np.asarray(target_no_k).reshape(H + 1, B)[0], target[0])


def test_termination_cuts_targets_and_masks_later_states():
    nets = sac_nets(SAC, -jnp.ones(D), jnp.ones(D))
    _, state = learner_state(zero_alpha=True)

    def ends_at_first_step(key, obs, action):
        next_obs, reward, _ = linear_model(key, obs, action)
        return next_obs, reward, jnp.ones(obs.shape[0], bool)

    terminated = jnp.array([True, False, False, False, False])
    real = real_batch(jax.random.key(5), terminated)
    _, _, target, weight = mbve.expanded_critic_batch(nets, state, real, ends_at_first_step,
                                                      jax.random.key(6), 3, 0.9)
    target, weight = np.asarray(target).reshape(4, B), np.asarray(weight).reshape(4, B)
    # a real terminal transition: target r_0, no imagined state trained
    assert target[0, 0] == pytest.approx(float(real.reward[0]))
    np.testing.assert_array_equal(weight[1:, 0], 0.0)
    # otherwise the model ends every path after its first imagined step: s_1 is trained
    # (its step is terminal, target r_1), s_2 and s_3 are not
    np.testing.assert_array_equal(weight[1, 1:], 1.0)
    np.testing.assert_array_equal(weight[2:, 1:], 0.0)
    r1 = target[1, 1:]
    np.testing.assert_allclose(target[0, 1:], np.asarray(real.reward[1:]) + 0.9 * r1, rtol=1e-5)


def test_update_with_expanded_targets_fits_them():
    """The learner's critic regresses on the given targets: repeated updates on a fixed
    ``CriticTargets`` batch drive the critics' values towards it, and its info joins the
    update's."""
    learner = make_sac(SAC.replace(critic_lr=3e-3), D, -jnp.ones(D), jnp.ones(D))
    state = learner.init(jax.random.key(0))
    real = real_batch(jax.random.key(7))
    target = jnp.linspace(-3.0, 3.0, B)
    batch = CriticTargets(real, lambda sac_state, preprocess: (
        (preprocess(real.obs), real.action, target, jnp.ones(B)), {"built": jnp.ones(())}))
    step = jax.jit(lambda s, k: learner.update(s, batch, k))
    for k in jax.random.split(jax.random.key(8), 500):
        state, info = step(state, k)
    assert info["built"] == 1
    nets = sac_nets(SAC, -jnp.ones(D), jnp.ones(D))
    q = nets.critic_values(state.critic, real.obs, real.action)
    np.testing.assert_allclose(q, jnp.broadcast_to(target, q.shape), atol=0.05)


def test_normalisation_reaches_the_callers_targets():
    """Under ``normalize_observations`` a ``CriticTargets`` batch's ``build`` gets the learner's
    inner state and the normalisation of this update's statistics as ``preprocess``: the
    caller's targets see what the networks see, without reaching into the wrapper."""
    learner = normalize_observations(make_sac(SAC, D, -jnp.ones(D), jnp.ones(D)), D)
    state = learner.init(jax.random.key(0))
    real = real_batch(jax.random.key(7)).replace(
        obs=5.0 + 3.0 * real_batch(jax.random.key(7)).obs)
    seen = {}

    def build(inner, preprocess):
        seen["inner"], seen["obs"] = inner, preprocess(real.obs)
        return (seen["obs"], real.action, jnp.zeros(B), jnp.ones(B)), {}

    learner.update(state, CriticTargets(real, build), jax.random.key(1))
    assert seen["inner"] is state.inner
    expected = normalized(observation_stats_update(state, real.obs), real.obs)
    np.testing.assert_array_equal(seen["obs"], expected)
    assert abs(float(np.mean(seen["obs"]))) < 0.5  # centred, unlike the raw 5 +- 3


def test_learns_pendulum_on_a_small_budget():
    """A small ensemble with the known reward, SAC 64 x 64, G = 4, H = 2. Measured (2 seeds,
    2250 env steps): first evaluations -1306 / -1441, best -100 / -340; a random policy scores
    about -1200."""
    model = dynamics.EnsembleConfig(num_members=4, num_elites=3, hidden_sizes=(64, 64),
                                    max_epochs=20)
    config = mbve.Config.for_env(env="Pendulum-v1", total_steps=2250, eval_every=250,
                                 eval_episodes=5, updates_per_step=4, horizon=2,
                                 batch_size=128, known_reward=True, model=model,
                                 learner=SACConfig(hidden_sizes=(64, 64), activation="swish",
                                                   actor_lr=1e-3, critic_lr=1e-3,
                                                   alpha_lr=1e-3, tau=0.02))
    _, m = jax.jit(jax.vmap(mbve.make_train(config)))(jax.random.split(jax.random.key(0), 2))
    returns = np.asarray(m["eval_return"])
    assert (returns.max(axis=1) > -600).all(), returns
    assert (returns.max(axis=1) - returns[:, 0] > 500).all(), returns
    assert not np.asarray(m["model_nonfinite"]).any()


TINY = dict(env="Pendulum-v1", total_steps=750, eval_every=250, initial_random_steps=250,
            eval_episodes=2, updates_per_step=2, batch_size=64, horizon=2,
            model=dynamics.EnsembleConfig(num_members=3, num_elites=2, hidden_sizes=(32,),
                                          max_epochs=3),
            learner=SACConfig(hidden_sizes=(32, 32)))


def test_config_errors():
    with pytest.raises(ValueError, match="discrete"):  # needs the env: when training is built
        mbve.make_train(mbve.Config.for_env(env="CartPole-v1"))
    with pytest.raises(ValueError, match="horizon"):
        mbve.Config.for_env(env="Pendulum-v1", horizon=-1)
    with pytest.raises(ValueError, match="horizon=201 is invalid"):  # Pendulum's 200 steps
        mbve.make_train(mbve.Config.for_env(env="Pendulum-v1", horizon=201))
    with pytest.raises(ValueError, match="learner=DQNConfig is invalid for MBVE"):
        mbve.Config.for_env(learner=DQNConfig())
    with pytest.raises(ValueError, match="eval_every=0"):
        mbve.Config.for_env(env="Pendulum-v1", eval_every=0)
