"""purembrl defers gymnax's plotting imports (``purembrl._deferred_imports``) without changing
what a user's own import of them gets, and ``import purembrl`` itself stays instant (the command
line installs its signal handling after it)."""

import subprocess
import sys

CHECK = """
import sys
import purembrl.envs, gymnax
assert 'scipy.stats' not in sys.modules and 'pandas' not in sys.modules, 'loaded at import'
import seaborn as sns
import matplotlib
import matplotlib.pyplot as plt
assert 'pandas' not in sys.modules, 'a plain import loaded seaborn'
assert plt is matplotlib.pyplot is sys.modules['matplotlib.pyplot']
matplotlib.use('Agg')
fig, ax = plt.subplots()
assert plt.get_backend().lower() == 'agg'
assert len(sns.color_palette('cubehelix', 3)) == 3 and type(sns).__name__ == 'module'
env, params = gymnax.make('Pong-misc')
import purembrl.driver.report as report, numpy as np, os, tempfile
path = os.path.join(tempfile.mkdtemp(), 'c.png')
report.plot_curves(path, [('x', {'r': np.ones((2, 3))})], ('step', 'r'))
assert os.path.getsize(path) > 0
print('ok')
"""


def assert_runs(code: str) -> None:
    """``code`` in a fresh Python process prints ``ok``."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_plotting_modules_load_on_first_use_and_then_work():
    assert_runs(CHECK)


def test_modules_imported_before_purembrl_are_left_as_they_are():
    assert_runs("""
import seaborn, matplotlib.pyplot as plt, sys
import purembrl.envs
assert sys.modules['seaborn'] is seaborn and type(seaborn).__name__ == 'module'
assert sys.modules['matplotlib.pyplot'] is plt
print('ok')
""")


def test_the_package_imports_nothing_and_every_path_to_gymnax_defers():
    assert_runs("""
import sys
import purembrl
assert 'matplotlib' not in sys.modules and 'jax' not in sys.modules
import purembrl.interact, purembrl.algos.c_learning
assert 'gymnax' in sys.modules and 'pandas' not in sys.modules
print('ok')
""")
