"""gymnax's plotting imports, deferred: import this module before gymnax.

gymnax imports every environment it ships when it is imported, and two of them import plotting
libraries at the top of their files, for their renderers only: Pong imports seaborn (and with it
scipy.stats and pandas), Pong and Catch ``matplotlib.pyplot``. That was most of gymnax's import
(about 2 of its 2.3 s), paid by every command before it did anything (benchmarks/RESULTS.md,
"Figure 8.2 at 1000 runs per n"). The modules of purembrl that import gymnax import this one
first (``purembrl.envs``, ``purembrl.interact``, ``purembrl.algos.c_learning``). It is not done in
``purembrl/__init__.py``: finding ``matplotlib.pyplot`` imports matplotlib (about 0.26 s), and
``python -m purembrl`` installs its signal handling only after the package's ``__init__`` ran
(``purembrl.interrupts``), so a Ctrl-C in that time would have been a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types


def load_on_first_use(name: str) -> None:
    """Put a module that is not yet imported into ``sys.modules`` as one that runs its code when
    an attribute it does not yet have is first read (a later ``import`` of it, which reads
    ``__spec__``, does not load it; ``importlib.util.LazyLoader`` would).

    Deferred, a module loads into the same module object when first used: by a renderer, by
    purembrl's plots, or by the user's own code.
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)  # imports the parent package, if any
    if spec is None or spec.loader is None:
        return
    lock = threading.RLock()

    class Deferred(types.ModuleType):
        def __getattr__(self, attribute):
            with lock:
                if type(self) is Deferred:  # not loaded by another thread meanwhile
                    self.__class__ = types.ModuleType
                    spec.loader.exec_module(self)
            return getattr(self, attribute)

    module = importlib.util.module_from_spec(spec)
    module.__class__ = Deferred
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # as an import of the submodule would: ``import a.b`` then ``a.b``
        setattr(sys.modules[parent], child, module)


for _name in ("seaborn", "matplotlib.pyplot"):
    load_on_first_use(_name)
del _name
