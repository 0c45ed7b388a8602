"""Runs that do not wait for each other (issue 24): ``purembrl.loop.pool_episodes`` plays a
batch of episode-indexed runs on slots, each run through its own episodes, and must give the
numbers of the lockstep ``jax.vmap`` bit for bit; the driver uses it for whole runs and sweeps,
and falls back to the chunks' per-iteration guard when a run goes non-finite."""

import threading
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purembrl import run
from purembrl.algos import dyna_q
from purembrl.driver import engine
from purembrl.loop import EpisodeLoop, episodes_loop, pool_episodes

from .helpers import GrowConfig


def raw(tree):
    return [np.asarray(jax.random.key_data(x)) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
            else np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_same(a, b):
    a, b = raw(a), raw(b)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fields", [dict(env="DynaMaze", planning_steps=5),
                                    dict(env="BlockingMaze", plus=True, kappa=1e-3,
                                         model="counts", num_next_samples=2, planning_steps=3)])
def test_pool_equals_the_lockstep_batch_bit_for_bit(fields):
    config = dyna_q.Config.for_env(num_episodes=6, **fields)
    keys = jax.random.split(jax.random.key(3), 7)
    state, metrics = jax.jit(jax.vmap(dyna_q.make_train(config)))(keys)
    lengths = np.asarray(metrics["steps_per_episode"])
    assert len({tuple(row) for row in lengths}) == 7  # the runs' episodes differ in length
    loop = dyna_q.make_episode_loop(config)
    for width in (2, 7):  # fewer slots than runs (slots take new runs), and one per run
        finals, pooled = jax.jit(lambda k, w=width: pool_episodes(loop, jax.vmap(loop.init)(k),
                                                                  w))(keys)
        assert_same(pooled, metrics)
        assert_same(finals, state)


def test_pooled_parts_on_threads_give_the_same_numbers():
    """``engine.pooled`` cuts the lanes in one part per worker thread; the numbers may not
    depend on the cut (6 lanes: 1, 2 and 3 parts; 4 workers do not divide 6, so 3; 6 would
    leave parts of one lane, whose programs differ from a batch's in the last bits, so 3)."""
    config = dyna_q.Config.for_env(planning_steps=3, num_episodes=4)
    loop = dyna_q.make_episode_loop(config)
    states = jax.vmap(loop.init)(jax.random.split(jax.random.key(5), 6))
    carry = (states, jnp.ones(6, bool))
    one = engine.pooled(loop, width=2, workers=1)(carry)
    for workers in (2, 3, 4, 6):
        assert_same(engine.pooled(loop, width=2, workers=workers)(carry), one)
    assert not np.asarray(one[1]["nonfinite"]).any()

    # progress: each finished part is reported (runs done, runs), on the calling thread,
    # and reporting changes no number
    calls = []
    reported = engine.pooled(loop, width=2, workers=3)(
        carry, on_part=lambda done, runs: calls.append((done, runs, threading.get_ident())))
    assert_same(reported, one)
    assert [c[:2] for c in calls] == [(2, 6), (4, 6), (6, 6)]
    assert {c[2] for c in calls} == {threading.get_ident()}


def test_pooled_memory_counts_the_episode_records():
    """A whole run keeps every episode's record until the reports: its estimate counts them
    (a record per episode per run, plus the guard's finite flag), beside the carry twice."""
    config = dyna_q.Config.for_env(planning_steps=3, num_episodes=4)
    loop = dyna_q.make_episode_loop(config)
    carry = jax.eval_shape(lambda k: (jax.vmap(loop.init)(k), jnp.ones(6, bool)),
                           jax.random.split(jax.random.key(5), 6))
    record = jax.eval_shape(
        lambda k: (c := loop.init(k), loop.end(c, loop.begin(c)[1], jnp.int32(0), 0.0))[1],
        jax.random.key(0))
    record_bytes = (engine.nbytes(record) + 1) * 4 * 6
    total, text = engine.pooled(loop, width=2).memory(carry)
    assert f"episode records {engine.human(record_bytes)}" in text
    assert total >= 2 * engine.nbytes(carry[0]) + record_bytes


def test_step_mode_has_no_episode_loop():
    assert dyna_q.make_episode_loop(dyna_q.Config.for_env(num_steps=100)) is None


def test_run_and_sweep_take_the_pool_and_match_their_chunks(capsys):
    config = dyna_q.Config.for_env(planning_steps=5, num_episodes=5)
    whole = run.run(dyna_q, config, 3, seed=2, table=False)
    err = capsys.readouterr().err
    assert "runs not waiting for each other" in err
    assert "3 of 3 runs done" in err  # the progress of a pooled run: its finished parts
    chunked = run.run(dyna_q, config, 3, seed=2, num_chunks=2, progress=False, table=False)
    assert_same(whole.metrics, chunked.metrics)
    assert_same(whole.state, chunked.state)

    # a product grid (split into groups by planning_steps, whose value each group's loop then
    # takes unbatched; alpha and the rest constants) and a grid that is not (one group,
    # planning_steps and alpha batched)
    for grid in [[(0, 0.1), (5, 0.1), (20, 0.1)], [(0, 0.1), (5, 0.5), (5, 0.1)]]:
        configs = [config.replace(planning_steps=n, alpha=alpha) for n, alpha in grid]
        whole = run.sweep(dyna_q, configs, 2, table=False)
        assert "runs not waiting for each other" in capsys.readouterr().err
        chunked = run.sweep(dyna_q, configs, 2, num_chunks=1, progress=False, table=False)
        assert_same(whole.metrics, chunked.metrics)
        assert_same(whole.state, chunked.state)


def grow_module():
    """A stand-in episode-indexed algorithm: w starts at 10^(low + 20u) (u uniform per seed)
    and grows 10x per step; an episode lasts 1-3 steps (the seed's own), so with low = 20
    some seeds overflow float32 at their own episode."""
    def make_episode_loop(config):
        def init(key):
            u = jax.random.uniform(key)
            return {"w": 10.0 ** (config.low + 20.0 * u), "t": jnp.zeros((), jnp.int32),
                    "every": 1 + (u * 3).astype(jnp.int32)}

        def step(c):
            c = {**c, "w": c["w"] * 10.0, "t": c["t"] + 1}
            return c, jnp.zeros(()), c["t"] % c["every"] == 0

        return EpisodeLoop(
            init=init, begin=lambda c: (c, jnp.zeros(())), step=step,
            end=lambda c, aux, length, ret: {"w": c["w"], "t": c["t"], "length": length},
            report=lambda r: {"env_steps": r["t"], "eval_return": jnp.log10(r["w"]),
                              "length": r["length"]},
            num_episodes=config.iterations)

    module = types.ModuleType("grow_episodes")
    module.make_episode_loop = make_episode_loop
    module.make_loop = lambda config: episodes_loop(make_episode_loop(config))
    return module


def test_a_non_finite_run_redoes_the_batch_under_the_guard(capsys):
    module = grow_module()
    diverging = GrowConfig()
    whole = run.run(module, diverging, 6, table=False)
    assert "redoing the batch in chunks" in capsys.readouterr().err
    chunked = run.run(module, diverging, 6, num_chunks=3, progress=False, table=False)
    flags = whole.metrics["nonfinite"]
    assert flags[:, -1].any() and not flags[:, -1].all()
    assert_same(whole.metrics, chunked.metrics)
    assert_same(whole.state, chunked.state)

    healthy = GrowConfig(low=-30.0)
    whole = run.run(module, healthy, 6, table=False)
    assert "redoing" not in capsys.readouterr().err
    assert not whole.metrics["nonfinite"].any()
    assert_same(whole.metrics, run.run(module, healthy, 6, num_chunks=3, progress=False,
                                       table=False).metrics)


def test_pooled_marks_the_episode_where_a_run_went_non_finite():
    module = grow_module()
    loop = module.make_episode_loop(GrowConfig())
    keys = run.seed_keys(0, 6)
    states = jax.vmap(loop.init)(keys)
    (_, healthy), metrics = engine.pooled(loop, width=4)((states, jnp.ones(6, bool)))
    finite = np.isfinite(np.asarray(metrics["eval_return"]))
    flags = np.asarray(metrics["nonfinite"])
    for lane in range(6):
        first = int(np.argmax(~finite[lane])) if not finite[lane].all() else None
        expected = np.zeros(12, bool) if first is None else np.arange(12) >= first
        np.testing.assert_array_equal(flags[lane], expected)
        assert bool(healthy[lane]) == (first is None)


def test_num_chunks_must_be_a_positive_integer_or_none():
    with pytest.raises(ValueError, match="num_chunks=0 is invalid"):
        engine.Options(num_chunks=0)
