import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import buffer, dynamics, offpolicy
from purembrl.algos import mbpo
from purembrl.learners import DQNConfig, SACConfig
from purembrl.types import Transition

TINY_MODEL = dynamics.EnsembleConfig(num_members=3, num_elites=2, hidden_sizes=(32, 32),
                                     weight_decay=0.0, max_epochs=3)


def tiny(**fields):
    base = dict(env="Pendulum-v1", total_steps=700, eval_every=100, initial_random_steps=500,
                model_train_freq=100, rollout_freq=50, rollouts_per_step=4, updates_per_step=2,
                batch_size=64, eval_episodes=2, epoch_length=100, model=TINY_MODEL,
                rollout_schedule=(1, 3, 1, 4), learner=SACConfig(hidden_sizes=(32, 32)))
    return mbpo.Config.for_env(**{**base, **fields})


def test_rollout_schedule_and_model_buffer_counts():
    # epochs of 100 steps; schedule (1, 3, 1, 4): length 1 up to epoch 1, linear to 4 at epoch 3
    config = tiny(total_steps=900, eval_every=100)
    lengths = [int(mbpo.rollout_length(config, jnp.int32(s))) for s in (0, 199, 200, 300, 450)]
    assert lengths == [1, 1, 2, 4, 4]  # epoch 2: floor(1 + 0.5 * 3) = 2
    _, metrics = jax.jit(mbpo.make_train(config))(jax.random.key(1))
    # rollouts start at env step 500 (epoch 5): the schedule is at its maximum, 4; each batch
    # branches from 4 rollouts per step * 50 steps = 200 start states
    np.testing.assert_array_equal(np.asarray(metrics["rollout_length"]), 4)
    # Pendulum never terminates (known termination): every branch runs its full length, so
    # each rollout batch adds 200 * 4 = 800 transitions
    np.testing.assert_array_equal(np.asarray(metrics["rollouts_added"]), 800)
    # the model buffer keeps one epoch (100 steps = two rollout batches) at the longest length
    assert config.model_buffer_size == 200 * 4 * 2
    sizes = np.asarray(metrics["model_buffer_size"])
    assert sizes[0] == 1600 and np.all(sizes == 1600)


def test_mixed_batches_have_the_configured_real_fraction():
    config = tiny(real_ratio=0.25, batch_size=64)
    assert config.num_real == 16
    example = Transition(obs=jnp.zeros(3), action=jnp.zeros(1), reward=jnp.zeros(()),
                         next_obs=jnp.zeros(3), terminated=jnp.zeros((), bool))
    fill = lambda r, n: jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)),
                                     example.replace(reward=jnp.float32(r)))
    env_buf = buffer.add(buffer.init(example, 100), fill(1.0, 100))
    model_buf = buffer.add(buffer.init(example, 100), fill(-1.0, 100))
    batch = buffer.sample_mixed(env_buf, model_buf, jax.random.key(0), 16, 48)
    assert int((batch.reward == 1.0).sum()) == 16 and int((batch.reward == -1.0).sum()) == 48
    empty = buffer.init(example, 100)
    batch = buffer.sample_mixed(env_buf, empty, jax.random.key(0), 16, 48)
    assert bool((batch.reward == 1.0).all())  # no model data yet: real data in its place


def test_parts_do_what_their_docstrings_say():
    # make_parts: the pieces the loop runs (benchmarks/mbpo_profile.py times them apart)
    config = tiny()
    parts = mbpo.make_parts(config)
    state = jax.jit(parts.init)(jax.random.key(4))
    assert int(state.env_steps) == 500 and int(state.replay.size) == 500
    assert int(state.model_buffer.size) == 0
    fitted, info = jax.jit(parts.fit)(state, jax.random.key(5))
    assert 1 <= int(info["model_epochs"]) <= config.model.max_epochs
    assert not np.array_equal(np.asarray(jax.tree.leaves(fitted.model.params)[0]),
                              np.asarray(jax.tree.leaves(state.model.params)[0]))
    branched, stats = jax.jit(parts.branch)(fitted, jax.random.key(6))
    # 4 rollouts per step * 50 steps, length 4 at epoch 5 of the schedule, never terminating
    assert int(stats["rollouts_added"]) == int(branched.model_buffer.size) == 4 * 50 * 4
    stepped, info = jax.jit(offpolicy.env_step(parts))(branched, jax.random.key(7))
    assert int(stepped.env_steps) == 501 and int(stepped.replay.size) == 501
    assert np.isfinite(float(info["critic_loss"]))
    off = mbpo.make_parts(tiny(real_ratio=1.0))
    state = off.init(jax.random.key(4))
    for part in (off.fit, off.branch):  # the model off: both are the identity
        same, info = part(state, jax.random.key(5))
        assert same is state and info == {}


def test_model_off_is_the_model_free_learner():
    config = tiny(real_ratio=1.0)
    assert not config.model_on and config.num_real == config.batch_size
    _, metrics = jax.jit(mbpo.make_train(config))(jax.random.key(2))
    assert "model_val_mse" not in metrics and int(metrics["model_buffer_size"][-1]) == 0


def test_discrete_actions_use_dqn_with_a_learned_model():
    config = mbpo.Config.for_env(env="CartPole-v1", total_steps=700, eval_every=100,
                                 initial_random_steps=500, model_train_freq=100, rollout_freq=100,
                                 rollouts_per_step=2, updates_per_step=2, batch_size=32,
                                 eval_episodes=2, model=TINY_MODEL, rollout_schedule=(1, 1, 3, 3),
                                 learner=DQNConfig(hidden_sizes=(16,)), n_step=1,
                                 model_n_step=1)
    assert config.known_termination  # CartPole's preset
    _, metrics = jax.jit(mbpo.make_train(config))(jax.random.key(3))
    assert np.isfinite(np.asarray(metrics["q_loss"])).all()
    # branches end at the (known) termination: fewer than 200 * 3 transitions may be added
    assert 200 <= int(metrics["rollouts_added"][-1]) <= 600


@pytest.mark.parametrize("policy, greedy_share", [("behaviour", None), ("settled", 1.0),
                                                  ("greedy", 1.0)])
def test_rollout_policy_sets_how_branched_rollouts_act(policy, greedy_share):
    # epsilon 1 -> 0 over a schedule that has not begun: the real steps (and "behaviour"
    # rollouts) act at random; "settled" rollouts act at the schedule's end (epsilon 0) and
    # "greedy" ones without exploring, so every stored model action is the greedy one
    config = mbpo.Config.for_env(env="CartPole-v1", total_steps=600, initial_random_steps=500,
                                 rollout_freq=100, rollouts_per_step=4, true_dynamics=True,
                                 rollout_schedule=(1, 1, 2, 2), rollout_policy=policy,
                                 n_step=1, model_n_step=1,
                                 learner=DQNConfig(hidden_sizes=(16,), eps_start=1.0,
                                                   eps_end=0.0, eps_decay_steps=10_000))
    parts = mbpo.make_parts(config)
    state = jax.jit(parts.init)(jax.random.key(8))
    branched, _ = jax.jit(parts.branch)(state, jax.random.key(9))
    rows = int(branched.model_buffer.size)
    assert rows >= 400  # 400 starts, up to 2 steps each
    data = jax.tree.map(lambda x: x[:rows], branched.model_buffer.data)
    greedy = parts.learner.act(state.learner, jax.random.key(0), data.obs, False)
    share = float(np.mean(np.asarray(data.action) == np.asarray(greedy)))
    if greedy_share is None:  # uniform over CartPole's two actions
        assert 0.4 < share < 0.6
    else:
        assert share == greedy_share


def test_rollout_policy_is_checked():
    with pytest.raises(ValueError, match="rollout_policy='eps' is invalid: allowed one of "
                                         "'behaviour', 'settled', 'greedy'"):
        tiny(rollout_policy="eps")


def test_n_step_mixes_real_n_step_returns_with_one_step_model_data():
    example = Transition(obs=jnp.zeros(3), action=jnp.zeros((), jnp.int32),
                         reward=jnp.zeros(()), next_obs=jnp.zeros(3),
                         terminated=jnp.zeros((), bool))
    real = buffer.init(example.replace(episode_end=jnp.zeros((), bool)), 100)
    real = buffer.add(real, real.data.replace(reward=jnp.ones(100)))
    model = buffer.add(buffer.init(example, 100), jax.tree.map(
        lambda x: jnp.broadcast_to(x, (100, *x.shape)), example.replace(reward=jnp.float32(-1.0))))
    batch = buffer.sample_mixed(real, model, jax.random.key(0), 16, 48, n_step=3, gamma=0.5)
    # no episode ends: a real row's 3-step return is 1 + 0.5 + 0.25 (1 and 1.5 for the two
    # newest starts), discount 0.5^m; a model row keeps its reward with discount gamma
    real_rows, model_rows = slice(0, 16), slice(16, 64)
    np.testing.assert_allclose(np.asarray(batch.reward[model_rows]), -1.0)
    np.testing.assert_allclose(np.asarray(batch.discount[model_rows]), 0.5)
    m = np.asarray(jnp.log(batch.discount[real_rows]) / jnp.log(0.5)).round()
    np.testing.assert_allclose(np.asarray(batch.reward[real_rows]), 2 - 0.5 ** (m - 1),
                               rtol=1e-6)
    assert (m == 3).sum() >= 12

    config = mbpo.Config.for_env(env="CartPole-v1", total_steps=700, eval_every=100,
                                 initial_random_steps=500, model_train_freq=100, rollout_freq=100,
                                 rollouts_per_step=2, updates_per_step=2, batch_size=32,
                                 eval_episodes=2, model=TINY_MODEL, rollout_schedule=(1, 1, 3, 3),
                                 learner=DQNConfig(hidden_sizes=(16,)), n_step=5,
                                 model_n_step=3, known_reward=True)
    state, metrics = jax.jit(mbpo.make_train(config))(jax.random.key(3))
    assert np.isfinite(np.asarray(metrics["q_loss"])).all()
    assert state.replay.data.episode_end is not None and state.model_buffer.data.episode_end is None
    # the model buffer holds returns of up to 3 steps along each branch (rollouts of 3 steps):
    # the known reward is 1 at every step of CartPole, so a row with discount gamma^m has the return
    # (1 - gamma^m) / (1 - gamma); branches ended by the known termination give shorter ones
    gamma = config.learner.gamma
    rows = slice(0, int(state.model_buffer.size))
    discount = np.asarray(state.model_buffer.data.discount[rows])
    m = np.round(np.log(discount) / np.log(gamma))
    assert set(np.unique(m)) == {1, 2, 3}
    np.testing.assert_allclose(np.asarray(state.model_buffer.data.reward[rows]),
                               (1 - gamma ** m) / (1 - gamma), rtol=1e-5)
    assert (m == 3).mean() > 0.25
    for name in ("n_step", "model_n_step"):
        with pytest.raises(ValueError, match=f"{name}=3 is invalid: n-step returns are "
                                             "implemented for DQN learners only, not SACConfig"):
            mbpo.make_train(tiny(**{name: 3}))


def test_model_rows_keep_their_stored_discount_beside_one_step_real_rows():
    example = Transition(obs=jnp.zeros(3), action=jnp.zeros((), jnp.int32),
                         reward=jnp.zeros(()), next_obs=jnp.zeros(3),
                         terminated=jnp.zeros((), bool))
    real = buffer.add(buffer.init(example, 10), jax.tree.map(
        lambda x: jnp.broadcast_to(x, (10, *x.shape)), example.replace(reward=jnp.float32(1.0))))
    stored = example.replace(reward=jnp.float32(-2.0), discount=jnp.float32(0.25))
    model = buffer.init(stored, 10)
    # while the model buffer is empty its rows are real ones, with discount gamma
    batch = buffer.sample_mixed(real, model, jax.random.key(0), 4, 12, gamma=0.5)
    np.testing.assert_allclose(np.asarray(batch.discount), 0.5)
    model = buffer.add(model, jax.tree.map(lambda x: jnp.broadcast_to(x, (10, *x.shape)), stored))
    batch = buffer.sample_mixed(real, model, jax.random.key(0), 4, 12, gamma=0.5)
    np.testing.assert_allclose(np.asarray(batch.discount), [0.5] * 4 + [0.25] * 12)
    np.testing.assert_allclose(np.asarray(batch.reward), [1.0] * 4 + [-2.0] * 12)
    with pytest.raises(ValueError, match="sample_mixed needs gamma"):
        buffer.sample_mixed(real, model, jax.random.key(0), 4, 12)


def test_presets_and_errors():
    cartpole = mbpo.Config.for_env(env="CartPole-v1")
    assert cartpole.total_steps == mbpo.PRESETS["CartPole-v1"]["total_steps"]
    assert isinstance(cartpole.learner, DQNConfig)
    # CartPole's rate decays over its first 10k env steps' updates; Acrobot's, measured
    # without it, does not
    trained = 10_000 - cartpole.initial_random_steps
    assert cartpole.learner.lr_decay_updates == trained * cartpole.updates_per_step
    acrobot = mbpo.Config.for_env(env="Acrobot-v1")
    assert acrobot.learner == cartpole.learner.replace(lr_decay_updates=0)
    # CartPole's rollouts act at the end of epsilon's schedule; Acrobot's, as measured, do not
    assert cartpole.rollout_policy == "settled" and acrobot.rollout_policy == "behaviour"
    generic = mbpo.Config.for_env(env="MountainCarContinuous-v0")
    assert generic == mbpo.Config(env="MountainCarContinuous-v0")  # no preset: the defaults
    assert generic.updates_per_step == 20 and generic.real_ratio == 0.05  # the paper's
    assert generic.model == dynamics.EnsembleConfig()  # MBPO's ensemble, the paper's batch 256
    pendulum = mbpo.Config.for_env(env="Pendulum-v1")
    assert pendulum.model.batch_size == 32 and pendulum.rollout_freq == 1
    # a model given in full replaces the preset's
    assert mbpo.Config.for_env(env="Pendulum-v1", model=TINY_MODEL).model == TINY_MODEL
    assert generic.learner is None  # the env's action space chooses: SAC here
    # Acrobot's preset is the setting measured in benchmarks/dqn_settings.py
    acrobot = mbpo.Config.for_env(env="Acrobot-v1")
    assert acrobot.known_reward and acrobot.known_termination and acrobot.project_obs
    assert isinstance(acrobot.learner, DQNConfig) and acrobot.total_steps == 10_000
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import dqn_settings

    measured = {**dqn_settings.MBPO_ONESTEP, **dqn_settings.SETTINGS["mbpo_acrobot_known_proj"]}
    assert acrobot == mbpo.Config.for_env(env="Acrobot-v1", total_steps=10_000, eval_every=500,
                                          eval_episodes=10, **measured)
    with pytest.raises(ValueError, match="learner=SACConfig is invalid for this env"):
        mbpo.make_train(mbpo.Config.for_env(env="CartPole-v1", learner=SACConfig()))
    with pytest.raises(ValueError, match="learner=DQNConfig is invalid for this env"):
        mbpo.make_train(mbpo.Config.for_env(env="Pendulum-v1", learner=DQNConfig()))
    with pytest.raises(ValueError, match="real_ratio=1.5 is invalid"):
        mbpo.Config.for_env(real_ratio=1.5)
    with pytest.raises(ValueError, match="rollout_freq=0 is invalid"):
        mbpo.Config.for_env(rollout_freq=0)
    with pytest.raises(ValueError, match="eval_every=-1 is invalid"):
        mbpo.Config.for_env(eval_every=-1)
    with pytest.raises(ValueError, match="rollout_schedule"):
        mbpo.Config.for_env(rollout_schedule=(5, 1, 1, 1))
    with pytest.raises(ValueError, match="known_reward=True is invalid"):
        mbpo.Config.for_env(env="MountainCar-v0", known_reward=True)
    with pytest.raises(ValueError, match="unknown env"):
        mbpo.Config.for_env(env="Nope-v0")


def test_profile_benchmark_runs_and_projects(capsys):
    # benchmarks/mbpo_profile.py is the first thing a GPU session runs: keep it working
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import mbpo_profile
    # the same run both times: the second's programs (init, buffers, steps) come from the
    # compile cache
    run = ["--env", "Pendulum-v1", "--seeds", "1", "--repeats", "1", "--sizes", "300,600",
           "--set", "total_steps=750", "--set", "updates_per_step=2",
           "--set", "rollouts_per_step=4", "--set", "learner.hidden_sizes=32,32",
           "--set", "model.hidden_sizes=32,32"]
    assert mbpo_profile.main([*run, "--fit-epochs", "5"]) == 0
    out = capsys.readouterr().out
    for line in ("2 learner updates", "rollouts, length 1", "env buffer      600",
                 "fits of   5 epochs"):
        assert line in out, out
    # a subset of the parts: only those are timed, and there is no projection
    assert mbpo_profile.main([*run, "--parts", "updates"]) == 0
    out = capsys.readouterr().out
    assert "2 learner updates" in out and "rollouts, length" not in out, out
    assert "projected" not in out and "env buffer" not in out, out
    with pytest.raises(SystemExit):
        mbpo_profile.main(["--parts", "updates,physics"])
    assert "unknown ['physics']" in capsys.readouterr().err
