"""Compile once (issue 24): a run's chunks after the first compile nothing new, for every
algorithm, and a resumed run compiles no more than a fresh one. (The ensemble's log-variance
bounds once started weakly typed and turned strongly typed after the first fit, so MBPO's
second and third chunks each compiled the whole program again.)"""

import jax
import pytest

from purembrl import algos, run
from purembrl.driver import report
from tests import golden_cases

COMPILE = "/jax/core/compile/backend_compile_duration"
_events: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *args, **kwargs: _events.append(name) if name == COMPILE else None)

# one golden case per algorithm (their tiny budgets)
CASES = {algo: name for name, (algo, _) in reversed(golden_cases.CASES.items())}


def _compiles_per_chunk(monkeypatch, algo, config, **options):
    """Backend compiles up to the end of each chunk of ``run.run``, one chunk per evaluation
    (counted when the chunk's progress line is printed)."""
    marks = []
    progress = report.progress_line
    monkeypatch.setattr(report, "progress_line",
                        lambda *a, **k: (marks.append(len(_events)), progress(*a, **k)))
    start = len(_events)
    loop = algo.make_loop(config)
    # one seed: the driver vmaps a batch of one, so the chunks' programs are the batched ones
    # a run of many seeds compiles, at the least compile time (MBPO's compiled in 11.2 s at
    # one seed, 14.3 s at two: benchmarks/RESULTS.md)
    result = run.run(algo, config, 1, num_chunks=loop.num_iterations, table=False, **options)
    return [m - start for m in marks], result


@pytest.mark.parametrize("algo_name", sorted(algos.ALGORITHMS))
def test_later_chunks_compile_nothing(algo_name, monkeypatch, tmp_path, no_compile_cache):
    """MBPO's case (the one the bug was found in) also stops after two chunks and resumes:
    the resumed run compiles no more than the fresh one did, and its later chunks nothing."""
    name = CASES[algo_name]
    algo, config = algos.get(algo_name), golden_cases.config(name)
    iterations = 4 if algo_name == "mbpo" else 2
    if algo.make_loop(config).num_iterations < iterations:
        config = config.replace(
            total_steps=config.initial_random_steps + iterations * config.eval_every)
    if algo_name != "mbpo":
        counts, _ = _compiles_per_chunk(monkeypatch, algo, config)
        assert len(counts) >= 2 and counts[0] > 0 and counts[-1] == counts[0], (name, counts)
        return
    first, _ = _compiles_per_chunk(monkeypatch, algo, config, out=tmp_path, stop_after_chunks=2)
    assert len(first) == 2 and first[0] > 0 and first[1] == first[0], first
    resumed, result = _compiles_per_chunk(monkeypatch, algo, config, out=tmp_path, resume=True)
    assert result.complete and len(resumed) == 2, resumed
    assert resumed[0] <= first[0] and resumed[1] == resumed[0], (first, resumed)
