"""The shape every algorithm's training run takes: ``init`` then ``num_iterations`` ``step``s.

An algorithm builds a ``TrainLoop``; ``as_train`` turns it into the pure ``train(key)`` of the
design contract (one ``lax.scan``, purejaxrl's pattern), and the driver (``purembrl.run``) runs
the same ``step`` in chunks to show progress. One iteration ends with one evaluation, so the
metrics' leading axis is the evaluation index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class TrainLoop(NamedTuple):
    """A training run as pure functions.

    Attributes:
      init: ``key -> carry``, the whole training state (parameters, buffers, env states, keys).
      step: ``(carry, iteration) -> (carry, metrics)``, one iteration; ``iteration`` is its
        index (an int32 scalar, never batched: a loop may branch on it with ``lax.cond`` and
        the branch stays real under ``vmap``); ``metrics`` is a dict of arrays with fixed
        shapes (scalars for most), stacked by ``scan`` along a new leading axis.
      num_iterations: how many ``step``s make the run (a Python int).
    """

    init: Callable[[jax.Array], Any]
    step: Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]]
    num_iterations: int


def as_train(loop: TrainLoop) -> Callable[[jax.Array], tuple[Any, dict[str, jax.Array]]]:
    """``train(key) -> (final carry, metrics [num_iterations, ...])`` as a single scan."""

    def train(key: jax.Array):
        carry = loop.init(key)
        return jax.lax.scan(loop.step, carry, jnp.arange(loop.num_iterations, dtype=jnp.int32))

    return train


class EpisodeLoop(NamedTuple):
    """A run of ``num_episodes`` episodes, one iteration per episode, as pure functions of
    one real step, so that a batch of runs need not move in lockstep (``pool_episodes``).

    Attributes:
      init: ``input -> carry`` (the input: a key, or whatever a batch's lanes hold).
      begin: ``carry -> (carry, aux)``, before each episode (e.g. the evaluation's key).
      step: ``carry -> (carry, reward, done)``, one real step; after ``done`` the carry holds
        the next episode's first state (the environments reset themselves).
      end: ``(carry, aux, length, episode_return) -> record``, what the episode's metrics
        need, kept when it ends (a small pytree of fixed shapes).
      report: ``record -> metrics``, the episode's metrics (its evaluation, say); it may run
        long after the episode, on the record alone.
      num_episodes: episodes in a run (a Python int).
    """

    init: Callable[[Any], Any]
    begin: Callable[[Any], tuple[Any, Any]]
    step: Callable[[Any], tuple[Any, jax.Array, jax.Array]]
    end: Callable[[Any, Any, jax.Array, jax.Array], Any]
    report: Callable[[Any], dict[str, jax.Array]]
    num_episodes: int


def _episode(loop: EpisodeLoop, carry):
    """One whole episode from ``carry``: ``(carry, record)``."""
    carry, aux = loop.begin(carry)

    def body(x):
        carry, length, ret, _ = x
        carry, reward, done = loop.step(carry)
        return carry, length + 1, ret + reward, done

    init = (carry, jnp.zeros((), jnp.int32), jnp.zeros(()), jnp.zeros((), bool))
    carry, length, ret, _ = jax.lax.while_loop(lambda x: ~x[3], body, init)
    return carry, loop.end(carry, aux, length, ret)


def episodes_loop(loop: EpisodeLoop) -> TrainLoop:
    """The ``TrainLoop`` of an ``EpisodeLoop``: iteration i plays episode i to its end, then
    reports it. Under ``vmap`` every run waits for the batch's slowest episode;
    ``pool_episodes`` computes the same numbers without that wait."""

    def step(carry, iteration):
        carry, record = _episode(loop, carry)
        return carry, loop.report(record)

    return TrainLoop(init=loop.init, step=step, num_iterations=loop.num_episodes)


def episode_record(loop: EpisodeLoop, carry):
    """A record as ``loop.end`` makes it for an episode begun at ``carry`` (for its shapes:
    ``pool_episodes`` keeps one per episode per run)."""
    return loop.end(carry, loop.begin(carry)[1], jnp.zeros((), jnp.int32), jnp.zeros(()))


def pool_episodes(loop: EpisodeLoop, carries, width: int):
    """Play N runs (``carries``: their ``init`` outputs, leading axis N) to the end on
    ``width`` slots that do not wait for each other: ``(final carries [N], metrics [N,
    num_episodes, ...])``, the numbers of ``jax.vmap(as_train(episodes_loop(loop)))`` bit for
    bit (each run makes the same computations on its own carry; only their timing differs).

    Why: vmapped runs move in lockstep, so every episode of a batch lasts as long as its
    slowest run's; a tabular Dyna-Q batch of 1000 runs does 4-6x the steps its runs need
    (issue 24). Here every slot plays one run's episodes back to back, one real step per
    loop iteration, and takes the next waiting run as soon as its run ends; an ended
    episode's ``record`` is stored, and the ``report``s (evaluations) run at the end, one
    episode index at a time. The loop ends when every run has; with ``width`` < N the slots'
    wait for the last runs is shorter than a lockstep batch's (a run's total, not the sum of
    the episodes' maxima). Every slot steps every iteration (an idle one on garbage, discarded);
    the slots whose episode ended are then closed one at a time, so that XLA updates the
    slots' tables in place (a select over all slots copied every table at every step).
    A batch of one slot compiles to other instructions than a batch's, so ``width`` 1 can
    differ from the lockstep batch in the last bits of its floats.

    Args:
      loop: the runs' ``EpisodeLoop``. carries: N initial carries (``vmap(loop.init)``).
      width: slots, 1 <= width (more than N is N).
    """
    n = jax.tree.leaves(carries)[0].shape[0]
    width = max(1, min(width, n))
    episodes = loop.num_episodes
    first = jax.tree.map(lambda x: x[:width], carries)
    one = jax.tree.map(lambda x: x[0], carries)
    record_shape = jax.eval_shape(lambda c: episode_record(loop, c), one)
    # episode-major, as the reports read them
    records = jax.tree.map(lambda s: jnp.zeros((episodes, n, *s.shape), s.dtype), record_shape)

    slots, aux = jax.vmap(loop.begin)(first)
    state = dict(slots=slots, aux=aux, run=jnp.arange(width, dtype=jnp.int32),
                 episode=jnp.zeros(width, jnp.int32), length=jnp.zeros(width, jnp.int32),
                 ret=jnp.zeros(width), next_run=jnp.int32(width), records=records,
                 finals=carries)

    def close(x):
        """The lowest-numbered slot whose episode ended: store its record; if its run is
        over, take the next run; begin its next episode. One slot at a time, so that XLA
        updates the tables in place (a select over every slot copied them each step)."""
        s, todo = x
        i = jnp.argmax(todo)
        run, episode = s["run"][i], s["episode"][i] + 1
        # The slot's carry goes to ``finals`` at every episode's end (the last one stays), and
        # what follows reads it back from there: every read of the slots then comes before
        # their update below, which XLA can then make in place instead of copying them.
        finals = jax.tree.map(lambda f, v: f.at[run].set(v[i]), s["finals"], s["slots"])
        one = jax.tree.map(lambda f: f[run], finals)
        record = loop.end(one, jax.tree.map(lambda v: v[i], s["aux"]), s["length"][i],
                          s["ret"][i])
        records = jax.tree.map(lambda r, v: r.at[episode - 1, run].set(v), s["records"], record)
        finished = episode == episodes
        next_run = jnp.where(finished, s["next_run"], run)  # this slot's run from now on
        fresh = jax.tree.map(lambda c: c[jnp.minimum(next_run, n - 1)], carries)
        one, aux = loop.begin(jax.tree.map(lambda a, b: jnp.where(finished, a, b), fresh, one))
        put = lambda all_, v: all_.at[i].set(v)  # noqa: E731
        s = dict(slots=jax.tree.map(put, s["slots"], one), aux=jax.tree.map(put, s["aux"], aux),
                 run=s["run"].at[i].set(jnp.minimum(next_run, n)),
                 episode=s["episode"].at[i].set(jnp.where(finished, 0, episode)),
                 length=s["length"].at[i].set(0), ret=s["ret"].at[i].set(0.0),
                 next_run=s["next_run"] + finished.astype(jnp.int32), records=records,
                 finals=finals)
        return s, todo.at[i].set(False)

    def body(s):
        active = s["run"] < n
        slots, reward, done = jax.vmap(loop.step)(s["slots"])
        s = {**s, "slots": slots, "length": s["length"] + 1, "ret": s["ret"] + reward}
        return jax.lax.while_loop(lambda x: x[1].any(), close, (s, done & active))[0]

    state = jax.lax.while_loop(lambda s: (s["run"] < n).any(), body, state)
    # Reports episode by episode: a batch of evaluations waits for its longest, and the
    # early episodes' evaluations (greedy policies that loop to a cap) are the long ones.
    metrics = jax.lax.map(jax.vmap(loop.report), state["records"])
    return state["finals"], jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), metrics)
