"""The README's example runs as written."""

import pathlib
import re


def test_readme_python_example_runs(capsys):
    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has a Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "(8, 20)" in out
    lines = out.strip().splitlines()
    assert any(line.endswith(" 768") for line in lines)  # 256 branches x 3 steps, all valid
    assert lines[-1].startswith("(6, 4, 2) [")  # Q of 4 policies; GPI actions for 6 states
