"""The tests, arranged like the code: one folder per stage, each with a docstring saying what it
covers.

spec/      cell specs: validation, user spec files through the CLI
derive/    the derivation's stages
plan/      the kernel plan between the derivation and the emitters
emit/      the emitters and ``lstm-sym generate``: fresh, deterministic generated files
kernels/   the generated kernels (NumPy and C): contract, errors, numbers against references
native/    the Python binding of the generated C
models/    models built from the cells, weights in and out
docs/      the derivation documents and notebooks, the README's table of cells
verify/    the references and the random problems themselves
bench/     ``lstm-sym bench``
examples/  the C example and the trained example
package/   the repository as a whole (lint)

Shared: ``conftest.py`` (``require_tool``, ``require_module``, the ``random_problem`` fixture),
``problems.py`` (random problems, running a kernel on one), ``support.py`` (the repository root,
C compiler flags, ``run_script`` for ``scripts/``, ``relative_error``), ``scripts/`` (helper
scripts run in a process of their own).
"""
