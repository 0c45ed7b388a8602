import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl.algos import dyna_q
from purembrl.envs import make, tabular

from .helpers import seed_slice


def train_seeds(keys, **fields):
    config = dyna_q.Config.for_env(**fields)
    return jax.jit(jax.vmap(dyna_q.make_train(config)))(keys)


def model_value_iteration(state, gamma, model):
    """Q* of the agent's own learned model (untried (s, a) stay at 0, as planning never
    touches them): what Dyna-Q's planning converges to."""
    tried = np.asarray(state.tried)
    q = np.zeros(tried.shape)
    for _ in range(2000):
        if model == "deterministic":
            new = (np.asarray(state.reward) + gamma * (1 - np.asarray(state.terminal))
                   * q.max(1)[np.asarray(state.next_state)])
        else:
            counts = np.asarray(state.counts)
            probs = counts / np.maximum(counts.sum(-1, keepdims=True), 1)
            safe = np.maximum(counts, 1)
            targets = (np.asarray(state.reward_sum) / safe + gamma
                       * (1 - np.asarray(state.terminal_sum) / safe) * q.max(1)[None, None])
            new = (probs * targets).sum(-1)
        q = np.where(tried, new, 0.0)
    return q


def test_interface_and_metric_shapes():
    config = dyna_q.Config.for_env(env="DynaMaze", planning_steps=50, num_episodes=50)
    assert (config.alpha, config.gamma, config.epsilon) == (0.1, 0.95, 0.1)  # the book's
    state, metrics = dyna_q.make_train(config)(jax.random.key(0))
    assert metrics["steps_per_episode"].shape == (50,)
    for name in ("episode_return", "env_steps", "eval_return", "eval_length"):
        assert metrics[name].shape == (50,)
    assert int(metrics["env_steps"][-1]) == int(metrics["steps_per_episode"].sum())
    np.testing.assert_array_equal(metrics["episode_return"], 1.0)  # every episode ends at G


def test_n50_reaches_near_optimal_paths_within_ten_episodes():
    keys = jax.random.split(jax.random.key(2), 8)
    _, metrics = train_seeds(keys, planning_steps=50, num_episodes=10)
    best = np.asarray(metrics["steps_per_episode"]).min(axis=1)
    assert (best <= 16).sum() >= 6, best  # most seeds; 14 is optimal, epsilon = 0.1 explores


def test_planning_speeds_learning_as_in_figure_8_2():
    keys = jax.random.split(jax.random.key(3), 10)
    _, m0 = train_seeds(keys, planning_steps=0, num_episodes=10)
    _, m50 = train_seeds(keys, planning_steps=50, num_episodes=10)
    # episode 2 onwards: n = 50 is near optimal, n = 0 still hundreds of steps
    late0 = np.asarray(m0["steps_per_episode"])[:, 1:].mean()
    late50 = np.asarray(m50["steps_per_episode"])[:, 1:].mean()
    assert late50 < 30 and late0 > 5 * late50, (late0, late50)


def test_deterministic_planning_converges_to_the_model_closed_form():
    # alpha = 1 makes planning asynchronous value iteration on the learned model
    keys = jax.random.split(jax.random.key(4), 3)
    states, _ = train_seeds(keys, planning_steps=50, num_episodes=30, alpha=1.0)
    for i in range(3):
        state = seed_slice(states, i)
        expected = model_value_iteration(state, 0.95, "deterministic")
        np.testing.assert_allclose(np.asarray(state.q), expected, atol=1e-5)
        # the start state's value is gamma^(d - 1) for the path length d it has found
        d = 1 + np.log(np.asarray(state.q)[18].max()) / np.log(0.95)
        assert abs(d - round(d)) < 1e-3 and round(d) >= 14


def test_greedy_values_match_value_iteration_on_the_true_maze():
    # with enough experience the learned model is the maze itself near the optimal path
    keys = jax.random.split(jax.random.key(5), 6)
    states, _ = train_seeds(keys, planning_steps=50, num_episodes=60, alpha=1.0, epsilon=0.3)
    env, _ = make("DynaMaze")
    q_star = tabular.q_value_iteration(*tabular.maze_mdp(env), gamma=0.95)
    start_values = np.asarray(states.q)[:, 18].max(axis=1)
    assert q_star[18].max() == pytest.approx(0.95 ** 13)
    assert np.sum(np.abs(start_values - q_star[18].max()) < 1e-5) >= 4, start_values


def test_expected_update_targets():
    s, num_states = 3, 6
    counts = jnp.array([0.0, 2.0, 0.0, 1.0, 0.0, 5.0])
    reward_sum = jnp.array([0.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    terminal_sum = jnp.array([0.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    q = jnp.arange(num_states * 2, dtype=jnp.float32).reshape(num_states, 2) / 10
    probs, targets = dyna_q.count_model_targets(counts, reward_sum, terminal_sum, q, 0.9, s)
    np.testing.assert_allclose(probs, counts / 8)
    assert float(targets[1]) == pytest.approx(1.0)  # terminal: reward only
    assert float(targets[5]) == pytest.approx(0.9 * 1.1)
    exact = float(probs @ targets)
    u = jax.random.uniform(jax.random.key(0), (200_000,))
    samples = dyna_q.sample_categorical(u, probs)
    assert set(np.unique(np.asarray(samples)).tolist()) == {1, 3, 5}
    assert float(targets[samples].mean()) == pytest.approx(exact, abs=5e-3)
    # an untried (s, a) is a self-loop with reward 0
    probs0, targets0 = dyna_q.count_model_targets(jnp.zeros(6), jnp.zeros(6), jnp.zeros(6), q,
                                                  0.9, s)
    assert float(probs0 @ targets0) == pytest.approx(0.9 * float(q[s].max()))


@pytest.mark.parametrize("samples", [0, 16])
def test_count_model_in_a_slippery_maze(samples):
    # alpha = 1: each planning update sets Q(s, a) to the (exact or 16-sample) expected target
    keys = jax.random.split(jax.random.key(6), 4)
    states, metrics = train_seeds(keys, planning_steps=30, num_episodes=40, alpha=1.0,
                                  slip_prob=0.2, model="counts", num_next_samples=samples)
    assert states.counts.shape == (4, 54, 4, 54) and states.next_state.shape == (4, 0, 0)
    env, _ = make("DynaMaze")
    v_star = tabular.q_value_iteration(*tabular.maze_mdp(env, slip_prob=0.2), gamma=0.95)[18].max()
    if samples == 0:  # exact expected updates: planning is value iteration on the counts
        for i in range(4):
            state = seed_slice(states, i)
            v_model = model_value_iteration(state, 0.95, "counts")[18].max()
            # not 1e-5 as in the deterministic case: the counts moved after the last planning
            assert abs(float(state.q[18].max()) - v_model) < 0.03
    # the empirical model approaches the true one: the start value is near V* on average
    assert abs(np.asarray(states.q)[:, 18].max(axis=1).mean() - v_star) < 0.04


def test_same_key_same_result_different_keys_different_results(keys):
    train = jax.jit(jax.vmap(dyna_q.make_train(dyna_q.Config.for_env(planning_steps=5,
                                                                     num_episodes=8))))
    _, m = train(keys)
    _, again = train(keys)
    steps = np.asarray(m["steps_per_episode"])
    np.testing.assert_array_equal(steps, np.asarray(again["steps_per_episode"]))
    assert len({tuple(row) for row in steps.tolist()}) == keys.shape[0]
    # and the single-seed function gives what the vmapped one gave for that seed
    _, one = dyna_q.make_train(dyna_q.Config.for_env(planning_steps=5, num_episodes=8))(keys[2])
    np.testing.assert_array_equal(np.asarray(one["steps_per_episode"]), steps[2])


def test_sweep_hyperparameters_under_vmap_in_one_compile():
    # numeric fields are pytree leaves: vmap over a batch of configs
    configs = jax.tree.map(lambda *x: jnp.stack(x), *[
        dyna_q.Config.for_env(planning_steps=n, alpha=a, num_episodes=6)
        for n, a in [(0, 0.1), (5, 0.5), (20, 0.1)]])
    train = jax.jit(jax.vmap(lambda c, k: dyna_q.make_train(c)(k), in_axes=(0, None)))
    _, metrics = train(configs, jax.random.key(9))
    assert metrics["steps_per_episode"].shape == (3, 6)
    for i, (n, a) in enumerate([(0, 0.1), (5, 0.5), (20, 0.1)]):
        single = dyna_q.make_train(dyna_q.Config.for_env(planning_steps=n, alpha=a, num_episodes=6))
        _, m = single(jax.random.key(9))
        np.testing.assert_array_equal(np.asarray(metrics["steps_per_episode"][i]),
                                      np.asarray(m["steps_per_episode"]))


def test_dyna_q_plus_finds_the_new_path_in_the_blocking_maze():
    keys = jax.random.split(jax.random.key(7), 4)
    common = dict(env="BlockingMaze", num_steps=3000, eval_every=100, planning_steps=10,
                  alpha=1.0, kappa=1e-4)
    _, plain = train_seeds(keys, **common)
    _, plus = train_seeds(keys, plus=True, **common)
    assert plus["cumulative_reward"].shape == (4, 30)
    after_change = lambda m: np.asarray(m["cumulative_reward"])[:, -1] - np.asarray(
        m["cumulative_reward"])[:, 9]  # reward collected in steps 1000..3000
    assert after_change(plus).min() > 20  # every Dyna-Q+ seed reaches the goal again
    assert after_change(plus).mean() > after_change(plain).mean()


@pytest.mark.parametrize("field, value, message", [
    ("env", "CartPole-v1", "env='CartPole-v1' is invalid"),
    ("planning_steps", -1, "planning_steps=-1 is invalid"),
    ("planning_steps", 2.5, "planning_steps=2.5 is invalid"),
    ("alpha", 0.0, "alpha=0.0 is invalid: allowed 0 < alpha <= 1"),
    ("gamma", 1.5, "gamma=1.5 is invalid"),
    ("epsilon", -0.1, "epsilon=-0.1 is invalid"),
    ("model", "neural", "model='neural' is invalid"),
    ("num_episodes", 0, "num_episodes=0 is invalid"),
    ("eval_max_steps", 0, "eval_max_steps=0 is invalid"),
])
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dyna_q.Config.for_env(**{field: value})


def test_eval_every_need_not_divide_num_steps_and_a_bad_one_is_refused():
    # evaluations after every 7 steps and at the end (tests/test_offpolicy.py runs one)
    assert dyna_q.Config.for_env(num_steps=100, eval_every=7).num_iterations == 15
    with pytest.raises(ValueError, match="eval_every=0 is invalid"):
        dyna_q.Config.for_env(num_steps=100, eval_every=0)
