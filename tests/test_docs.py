"""The API page is current, public functions are documented, and the examples run."""

import importlib.util
import inspect
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "docs"))

import make_api  # noqa: E402

# ``make_loop`` and ``curve`` are the algorithm contract, documented once in purembrl.algos.
CONTRACT = {"make_loop", "curve"}


def test_every_public_function_and_class_has_a_docstring():
    missing = []
    for name in make_api.MODULES:
        if name.endswith("brax_env") and importlib.util.find_spec("brax") is None:
            continue
        module = importlib.import_module(name)
        assert module.__doc__, name
        for member, obj in make_api.public_members(module):
            if member not in CONTRACT and not inspect.getdoc(obj):
                missing.append(f"{name}.{member}")
    assert not missing, missing


def _config_classes():
    """Every algorithm's Config and every config class its fields may hold (each learner)."""
    from purembrl import algos
    from purembrl.config import config_choices, field_types

    seen: list[type] = []

    def walk(cls):
        if cls not in seen:
            seen.append(cls)
            for kind in field_types(cls).values():
                for nested in config_choices(kind):
                    walk(nested)

    for name in algos.ALGORITHMS:
        walk(algos.get(name).Config)
    return seen


def test_every_config_field_is_documented():
    """``list ALGO`` prints one line of documentation per field, read from the Attributes
    sections of the config classes (``purembrl.config.field_docs``): none may be missing."""
    from purembrl.config import field_docs

    classes = _config_classes()
    assert len(classes) >= 14
    missing = [f"{c.__module__}.{c.__name__}.{name}" for c in classes
               for name, doc in field_docs(c).items() if not doc]
    assert not missing, missing


@pytest.mark.skipif(importlib.util.find_spec("brax") is None, reason="documents brax_env too")
def test_the_api_page_is_up_to_date():
    assert make_api.main(["--check"]) == 0, "run: python docs/make_api.py"


@pytest.mark.parametrize("script, args", [
    ("gpi_transfer.py", ["--seeds", "1", "--tasks", "2", "--steps", "500"]),
    ("c_learning_maze.py", ["--seeds", "1", "--steps", "2000"]),
    ("mbpo_seeds.py", ["--seeds", "1", "--steps", "300"]),
])
def test_examples_run(script, args, tmp_path):
    extra = ["--out", str(tmp_path / "out")] if script == "mbpo_seeds.py" else []
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args,
                           *extra], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()
