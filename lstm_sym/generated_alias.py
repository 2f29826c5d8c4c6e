"""``generated``, the checkout's name of the kernels package: ``generated.<cell>`` is
``lstm_sym.kernels.<cell>``, the same module object.

In a checkout the generated files live in ``generated/`` at the project root, and the seed
tutorial's cells (and the notebooks) import them as ``from generated import lstm``. Installed,
the same files are the package ``lstm_sym.kernels`` (nothing named ``generated`` is installed).
Two module objects for one file would make two ``Parameters`` classes that ``isinstance`` tells
apart, so ``generated/__init__.py``, when imported under that name, calls :func:`alias`: from
then on every ``generated.<cell>`` import returns ``lstm_sym.kernels.<cell>`` itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys


class _Forward(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``<alias>.<name>`` as the module ``<target>.<name>``, imported under that name."""

    def __init__(self, alias: str, target: str):
        self.alias, self.target = alias, target

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(self.alias + "."):
            return None
        real = self.target + fullname[len(self.alias) :]
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, loader_state=real)

    def create_module(self, spec):
        module = importlib.import_module(spec.loader_state)
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        # The import system has set the alias's spec on the module (it overrides __spec__): put
        # the module's own back, so that it stays lstm_sym.kernels.<cell> in every respect.
        module.__spec__ = module.__spec__.loader_state


def alias(name: str, target: str) -> None:
    """Make the package ``name`` (being imported) an alias of the package ``target``."""
    importlib.import_module(target)
    sys.modules[name].__path__ = []  # its submodules come from the finder only
    if not any(isinstance(f, _Forward) and f.alias == name for f in sys.meta_path):
        sys.meta_path.insert(0, _Forward(name, target))
