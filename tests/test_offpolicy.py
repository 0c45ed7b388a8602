"""The one off-policy loop (purembrl.offpolicy): any budget and periods, evaluations every
eval_every steps and at the end, periodic parts on exactly their steps, real branches under
vmap, and the driver's chunks equal to make_train."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import dynamics, periods, run
from purembrl.algos import dqn, dyna, mbpo, sac
from purembrl.learners import DQNConfig, SACConfig

TINY_MODEL = dynamics.EnsembleConfig(num_members=3, num_elites=2, hidden_sizes=(16,),
                                     max_epochs=2)


def ragged_mbpo(**fields):
    """Periods that divide nothing: fits every 70 steps, rollouts every 30, evaluations every
    100, 350 trained steps (evaluations at 100, 200, 300 and 350)."""
    base = dict(env="Pendulum-v1", total_steps=450, eval_every=100, initial_random_steps=100,
                model_train_freq=70, rollout_freq=30, rollouts_per_step=2, updates_per_step=1,
                batch_size=16, eval_episodes=1, epoch_length=10_000, model_retain_epochs=1,
                rollout_schedule=(1, 1, 1, 1), model=TINY_MODEL,
                learner=SACConfig(hidden_sizes=(16, 16)))
    return mbpo.Config.for_env(**{**base, **fields})


def test_period_keys_are_the_keys_of_nested_scans_when_periods_nest():
    key = jax.random.key(3)
    event_keys, step_keys = periods.period_keys(key, (6, 2), 12)
    data = jax.random.key_data
    for block, block_key in enumerate(jax.random.split(key, 2)):
        fit_key, inner = jax.random.split(block_key)
        for sub, sub_key in enumerate(jax.random.split(inner, 3)):
            branch_key, leaves = jax.random.split(sub_key)
            for i, leaf in enumerate(jax.random.split(leaves, 2)):
                j = 6 * block + 2 * sub + i
                np.testing.assert_array_equal(data(step_keys[j]), data(leaf))
                np.testing.assert_array_equal(data(event_keys[0][j]), data(fit_key))
                np.testing.assert_array_equal(data(event_keys[1][j]), data(branch_key))
    # no periods: one key per step, split from the period's key
    _, flat = periods.period_keys(key, (), 5)
    np.testing.assert_array_equal(data(flat), data(jax.random.split(key, 5)))


def test_period_keys_when_periods_do_not_nest_give_each_event_its_own_key():
    event_keys, step_keys = periods.period_keys(jax.random.key(0), (7, 3), 20)
    data = np.asarray(jax.random.key_data(step_keys))
    assert len({tuple(row) for row in data}) == 20
    fits = {tuple(np.asarray(jax.random.key_data(event_keys[0][j]))) for j in (0, 7, 14)}
    branches = {tuple(np.asarray(jax.random.key_data(event_keys[1][j])))
                for j in range(0, 20, 3)}
    assert len(fits) == 3 and len(branches) == 7 and not fits & branches


def test_any_budget_runs_and_evaluates_every_period_and_at_the_end():
    # one ragged run (its MBPO program is the costly part) checks both the budget's periods
    # and the driver: 4 chunks (the last period cut at the budget, each chunk passed its first
    # iteration's index) give the numbers of one scan over every iteration from the same states
    # (make_train's in one program can differ in the last bits: purembrl.driver.engine)
    config = ragged_mbpo()
    loop = mbpo.make_loop(config)
    assert loop.num_iterations == config.num_iterations == 4
    state = jax.jit(jax.vmap(loop.init))(run.seed_keys(5, 2))
    iterations = jnp.arange(loop.num_iterations, dtype=jnp.int32)
    _, metrics = jax.jit(jax.vmap(lambda s: jax.lax.scan(loop.step, s, iterations)))(state)
    np.testing.assert_array_equal(metrics["env_steps"], [[200, 300, 400, 450]] * 2)
    # branches at t = 0, 30, 60, ... each add 2 * 30 one-step rollouts: after t steps,
    # ceil(t / 30) of them (the buffer holds them all)
    want = [60 * -(-t // 30) for t in (100, 200, 300, 350)]
    np.testing.assert_array_equal(metrics["model_buffer_size"], [want] * 2)
    for name, values in metrics.items():
        assert np.isfinite(values.astype(float)).all(), name
    assert not np.array_equal(metrics["eval_return"][0], metrics["eval_return"][1])

    result = run.run(mbpo, config, num_seeds=2, seed=5, num_chunks=4, progress=False,
                     table=False)
    assert sorted(result.metrics) == sorted([*metrics, "nonfinite"])
    assert not result.metrics["nonfinite"].any()
    for name, values in metrics.items():
        np.testing.assert_array_equal(result.metrics[name], np.asarray(values), err_msg=name)


def test_a_period_without_a_fit_reports_the_latest_fit():
    # fits every 150 steps (t = 0, 150), evaluations every 100: the third period holds none
    config = ragged_mbpo(model_train_freq=150, total_steps=400)
    _, metrics = jax.jit(mbpo.make_train(config))(jax.random.key(1))
    mse = np.asarray(metrics["model_val_mse"])
    np.testing.assert_array_equal(metrics["env_steps"], [200, 300, 400])
    assert np.isfinite(mse).all() and mse[0] != mse[1] == mse[2]


def test_the_fit_stays_a_real_branch_under_vmap():
    # the step number comes from the (unbatched) iteration index, so vmap over the state keeps
    # lax.cond a cond: a fit runs on its steps only, not on every step for every seed
    loop = mbpo.make_loop(ragged_mbpo())
    keys = jax.random.split(jax.random.key(0), 2)
    one = jax.make_jaxpr(loop.step)(jax.eval_shape(loop.init, keys[0]), jnp.int32(0))
    batched = jax.make_jaxpr(jax.vmap(loop.step, in_axes=(0, None)))(
        jax.eval_shape(jax.vmap(loop.init), keys), jnp.int32(0))
    conds = str(one).count("cond[")
    assert conds >= 3 and str(batched).count("cond[") == conds  # none became a select


def _top_level(closed_jaxpr):
    return [eqn.primitive.name for eqn in closed_jaxpr.jaxpr.eqns]


def _scans(jaxpr):
    """Every ``scan`` equation in ``jaxpr`` and its sub-jaxprs: ``(length, body)``."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            yield eqn.params["length"], eqn.params["jaxpr"]
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple) else (value,):
                if hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
                    yield from _scans(sub.jaxpr)


def test_a_fit_is_decided_once_per_block_not_once_per_step():
    # MBPO's preset shape: rollouts after every step, a fit every 50: the period's 100 steps
    # are 2 blocks of 50, the fit's cond sits in the block scan and the step scan has none
    loop = mbpo.make_loop(ragged_mbpo(model_train_freq=50, rollout_freq=1, total_steps=300))
    jaxpr = jax.make_jaxpr(jax.vmap(loop.step, in_axes=(0, None)))(
        jax.eval_shape(jax.vmap(loop.init), jax.random.split(jax.random.key(0), 2)),
        jnp.int32(0))
    blocks = [body for length, body in _scans(jaxpr.jaxpr) if length == 2
              and any(e.primitive.name == "scan" and e.params["length"] == 50
                      for e in body.jaxpr.eqns)]
    assert len(blocks) == 1 and "cond" in _top_level(blocks[0])  # the fit, then the steps
    steps = [e.params["jaxpr"] for e in blocks[0].jaxpr.eqns if e.primitive.name == "scan"]
    assert len(steps) == 1 and "cond" not in _top_level(steps[0])


def test_model_free_learners_run_any_budget():
    config = sac.Config.for_env(env="Pendulum-v1", total_steps=370, eval_every=100,
                                initial_random_steps=200, batch_size=16, eval_episodes=1,
                                learner=SACConfig(hidden_sizes=(16, 16)))
    _, metrics = jax.jit(sac.make_train(config))(jax.random.key(0))
    np.testing.assert_array_equal(metrics["env_steps"], [300, 370])
    config = dqn.Config.for_env(env="CartPole-v1", total_steps=330, eval_every=100,
                                initial_random_steps=200, batch_size=16, eval_episodes=1,
                                train_every=7, learner=DQNConfig(hidden_sizes=(16, 16)))
    _, metrics = jax.jit(dqn.make_train(config))(jax.random.key(0))
    np.testing.assert_array_equal(metrics["env_steps"], [300, 330])
    assert np.isfinite(metrics["q_loss"]).all()


def test_an_evaluation_period_longer_than_the_budget_evaluates_once_at_the_end():
    config = dyna.Config.for_env(env="Pendulum-v1", total_steps=330, eval_every=1000,
                                 initial_random_steps=250, model_train_freq=50,
                                 updates_per_step=1, batch_size=16, num_next_samples=2,
                                 eval_episodes=1, model=TINY_MODEL,
                                 learner=SACConfig(hidden_sizes=(16, 16)))
    _, metrics = jax.jit(dyna.make_train(config))(jax.random.key(0))
    np.testing.assert_array_equal(metrics["env_steps"], [330])


@pytest.mark.parametrize("total_steps", [100, 50])
def test_a_budget_without_trained_steps_is_refused(total_steps):
    with pytest.raises(ValueError, match=f"total_steps={total_steps} is invalid: allowed more "
                                         "than initial_random_steps"):
        ragged_mbpo(total_steps=total_steps)


def test_tabular_and_goal_conditioned_loops_evaluate_at_the_end_too():
    from purembrl.algos import c_learning, dyna_q

    config = dyna_q.Config.for_env(env="DynaMaze", num_steps=130, eval_every=50,
                                   planning_steps=2)
    _, metrics = jax.jit(dyna_q.make_train(config))(jax.random.key(0))
    np.testing.assert_array_equal(metrics["env_steps"], [50, 100, 130])
    # C-learning collects whole rounds (here 2 episodes x 50 steps): 300 trained steps in
    # periods of 200 evaluate at 200 and 300
    config = c_learning.Config.for_env(total_steps=400, eval_every=200, initial_random_steps=100,
                                       episodes_per_round=2, updates_per_round=2, batch_size=16,
                                       eval_episodes=1, hidden_sizes=(16, 16))
    _, metrics = jax.jit(c_learning.make_train(config))(jax.random.key(0))
    np.testing.assert_array_equal(metrics["env_steps"], [300, 400])


def test_a_model_buffer_too_large_to_index_is_a_value_error_when_training_is_built():
    # 400 rollouts per step kept for 26844 epochs of 200 steps: 2.1e9 rows, past int32
    config = mbpo.Config.for_env(env="Pendulum-v1", model_retain_epochs=26844)
    with pytest.raises(ValueError, match="the model buffer's size .* is invalid: allowed at most "
                                         "2147483647 rows"):
        mbpo.make_loop(config)
