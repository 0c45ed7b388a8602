"""The driver's divergence guard (purembrl.run.guarded): a run whose numbers turn non-finite is
stopped with its last finite state kept and reported, while the other runs go on."""

import types

import jax
import jax.numpy as jnp
import numpy as np

from purembrl import run
from purembrl.algos import sac
from purembrl.learners import SACConfig
from purembrl.loop import TrainLoop

from .helpers import GrowConfig


def grow_module():
    """A stand-in algorithm: w starts at 10^(low + 20u) (u uniform per seed) and grows 10x per
    iteration, so with low = 20 a seed overflows float32 (inf) at its own iteration, or not at
    all within 12 iterations when u < 0.33."""
    def make_loop(config):
        def init(key):
            return {"w": 10.0 ** (config.low + 20.0 * jax.random.uniform(key)),
                    "t": jnp.zeros((), jnp.int32)}

        def step(state, iteration):
            state = {"w": state["w"] * 10.0, "t": state["t"] + 1}
            return state, {"env_steps": state["t"], "eval_return": jnp.log10(state["w"])}

        return TrainLoop(init=init, step=step, num_iterations=config.iterations)

    module = types.ModuleType("grow")
    module.make_loop = make_loop
    return module


def test_a_diverging_seed_stops_with_its_last_finite_state_and_others_continue(capsys):
    keys = run.seed_keys(0, 6)
    w = np.asarray(jax.vmap(lambda k: 10.0 ** (20.0 + 20.0 * jax.random.uniform(k)))(keys))
    path = [w]
    with np.errstate(over="ignore"):
        for _ in range(12):  # the same float32 products, one iteration at a time (path[0]: init)
            w = (w * np.float32(10.0)).astype(np.float32)
            path.append(w)
    path = np.stack(path, 1)
    overflow = [int(np.argmax(~np.isfinite(row[1:]))) if not np.isfinite(row).all() else None
                for row in path]
    assert any(i is None for i in overflow) and any(i is not None for i in overflow)

    result = run.run(grow_module(), GrowConfig(), 6, num_chunks=3, progress=False, table=True)
    flags, returns = result.metrics["nonfinite"], result.metrics["eval_return"]
    err = capsys.readouterr().err
    for seed, first in enumerate(overflow):
        if first is None:
            assert not flags[seed].any() and np.isfinite(returns[seed]).all()
            assert f"seed {seed} stopped" not in err
            continue
        assert not flags[seed, :first].any() and flags[seed, first:].all()
        assert np.isfinite(returns[seed, :first]).all() and np.isnan(returns[seed, first:]).all()
        # the kept state is the last finite one (iteration `first`, numbered from 1)
        assert float(result.state["w"][seed]) == path[seed, first]
        assert int(result.state["t"][seed]) == first
        assert f"seed {seed} stopped at iteration {first + 1}: non-finite" in err


def test_a_diverging_sweep_point_is_reported_while_the_other_learns(capsys):
    """SAC with learning rates of 1e30 diverges; in the same compiled sweep the sane point's
    seeds are untouched (and equal to their own run's)."""
    base = sac.Config.for_env(env="Pendulum-v1", total_steps=600, eval_every=100,
                              initial_random_steps=200, eval_episodes=2, batch_size=32,
                              learner=SACConfig(hidden_sizes=(32, 32)))
    wild = base.replace(learner=base.learner.replace(actor_lr=1e30, critic_lr=1e30))
    result = run.sweep(sac, [base, wild], 2, progress=False, table=False)
    flags = result.metrics["nonfinite"]
    assert not flags[0].any()
    assert flags[1].any(axis=1).all(), flags[1]
    assert np.isfinite(result.metrics["eval_return"][0]).all()
    err = capsys.readouterr().err
    assert "point {'point': 1} seed 0 stopped" in err and "point {'point': 0}" not in err
    # every kept state is finite
    for leaf in jax.tree.leaves(result.state):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            assert np.isfinite(np.asarray(leaf)).all()


def test_a_run_whose_every_seed_diverged_stops_early(capsys):
    """Issue 23: when every run of the batch has stopped on a non-finite number, nothing is
    left to train, so the engine stops after that chunk instead of computing the rest."""
    result = run.run(grow_module(), GrowConfig(low=30.0, iterations=60), 4, num_chunks=30,
                     progress=False, table=False)
    flags = result.metrics["nonfinite"]
    by = run.all_diverged(result.metrics)
    assert flags[:, -1].all() and by is not None and by <= 9  # 1e30 * 10^9 > float32's max
    assert not result.complete and flags.shape[1] < 60 and flags.shape[1] % 2 == 0
    assert flags.shape[1] - by < 2  # stopped at the end of the chunk where the last one went
    healthy = run.run(grow_module(), GrowConfig(), 6, num_chunks=3, progress=False, table=False)
    assert healthy.complete and run.all_diverged(healthy.metrics) is None


def test_the_finite_check_joins_small_leaves_and_sees_every_leaf(monkeypatch):
    """The guard's check joins the float leaves of up to GUARD_JOIN_LIMIT elements, one vector
    per dtype, and checks larger ones alone: a NaN or an inf in any leaf, joined or not, of
    either dtype, is seen; integer leaves are not checked; the joined bytes are counted."""
    from purembrl.driver import engine

    monkeypatch.setattr(engine, "GUARD_JOIN_LIMIT", 6)
    tree = {"big": jnp.zeros(8), "small": jnp.zeros((2, 3)), "half": jnp.zeros(4, jnp.float16),
            "count": jnp.zeros(9, jnp.int32)}
    check = jax.jit(engine._all_finite)
    assert bool(check(tree))
    for name in ("big", "small", "half"):
        for bad in (jnp.nan, jnp.inf, -jnp.inf):
            broken = {**tree, name: tree[name].ravel().at[-1].set(bad).reshape(tree[name].shape)}
            assert not bool(check(broken)), (name, bad)
    # 6 float32 and 4 float16 elements joined, each with a one-byte flag; "big" is left alone
    assert engine.guard_bytes(tree) == 6 * 5 + 4 * 3
    # per run: two runs of 4 elements each are joined, not one leaf of 8
    assert engine.guard_bytes({"w": jnp.zeros((2, 4))}, num_runs=2) == 8 * 5
