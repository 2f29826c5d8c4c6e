"""The generated kernels: ``from lstm_sym.kernels import lstm`` (NumPy), each cell's C sources
and ABI data beside its module.

Installed from a wheel, this package *is* the project's ``generated/`` folder (pyproject.toml
maps it with setuptools' ``package-dir``) and this file is not part of it. In a checkout the
files stay in ``generated/`` at the project root (where ``from generated import lstm`` imports
the same module objects, see ``generated/__init__.py``); this stand-in makes that folder the
package's path.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parent.parent.parent / "generated")]
