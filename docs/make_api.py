"""Write ``docs/API.md``: every public function and class of purembrl's modules with its
signature and docstring (shapes, the paper and equation it follows), from the code itself.

    python docs/make_api.py          # rewrite docs/API.md
    python docs/make_api.py --check  # exit 1 if docs/API.md is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys

MODULES = [
    # building blocks
    "purembrl.types", "purembrl.buffer", "purembrl.networks", "purembrl.value", "purembrl.rng",
    "purembrl.learners.base", "purembrl.learners", "purembrl.learners.sac",
    "purembrl.learners.dqn", "purembrl.learners.naf", "purembrl.learners.normalize",
    "purembrl.dynamics.model", "purembrl.dynamics.fitting",
    "purembrl.rollout", "purembrl.successor",
    "purembrl.classifier", "purembrl.relabel", "purembrl.interact",
    # loops, the driver and checkpoints
    "purembrl.loop", "purembrl.offpolicy", "purembrl.periods", "purembrl.run",
    "purembrl.driver.engine",
    "purembrl.driver.training", "purembrl.driver.sweeps", "purembrl.driver.devices",
    "purembrl.driver.evaluation", "purembrl.driver.report", "purembrl.driver.logs",
    "purembrl.driver.compare",
    "purembrl.checkpoint",
    "purembrl.config",
    # environments
    "purembrl.envs", "purembrl.envs.known", "purembrl.envs.tabular", "purembrl.envs.dyna_maze",
    "purembrl.envs.four_room_objects", "purembrl.envs.goal_four_rooms",
    "purembrl.envs.point_maze", "purembrl.envs.brax_env", "purembrl.envs.host",
    # algorithms
    "purembrl.algos.base",
    "purembrl.algos.dyna_q", "purembrl.algos.sac", "purembrl.algos.dqn", "purembrl.algos.mbpo",
    "purembrl.algos.dyna", "purembrl.algos.mbve", "purembrl.algos.mba",
    "purembrl.algos.sf_policy_iteration", "purembrl.algos.sf_gpi", "purembrl.algos.c_learning",
]
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "API.md")


def public_members(module):
    """(name, object) of the functions and classes defined in ``module`` (not imported), in
    source order, leaving out names starting with an underscore."""
    members = []
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        try:
            line = inspect.getsourcelines(obj)[1]
        except (OSError, TypeError):
            line = 0
        members.append((line, name, obj))
    return [(name, obj) for _, name, obj in sorted(members, key=lambda m: m[0])]


def signature(obj) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    text = re.sub(r" at 0x[0-9a-f]+", "", text)  # object addresses change from run to run
    return text if len(text) < 300 else text[:297] + "..."


def render() -> str:
    lines = ["# purembrl API", "",
             "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.",
             ""]
    lines += [f"- [`{m}`](#{m.replace('.', '')})" for m in MODULES]
    for module_name in MODULES:
        if module_name == "purembrl.envs.brax_env" and importlib.util.find_spec("brax") is None:
            raise SystemExit("brax is needed to document purembrl.envs.brax_env")
        module = importlib.import_module(module_name)
        lines += ["", f"## {module_name}", "", inspect.cleandoc(module.__doc__ or "(no docstring)")]
        for name, obj in public_members(module):
            kind = "class" if inspect.isclass(obj) else "def"
            lines += ["", f"### `{kind} {name}{signature(obj)}`", ""]
            lines.append(inspect.cleandoc(obj.__doc__ or "(no docstring)"))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        with open(PATH) as f:
            if f.read() != text:
                print("docs/API.md is out of date: run python docs/make_api.py", file=sys.stderr)
                return 1
        return 0
    with open(PATH, "w") as f:
        f.write(text)
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
