"""lstm_sym: recurrent cells as SymPy equations, with derived backward passes and generated kernels.

Stages: ``lstm_sym.cells`` (specs) -> ``lstm_sym.derive`` (derivation data) ->
``lstm_sym.codegen`` (emitters) -> ``generated/``; ``lstm_sym.verify`` is the independent
exact model the tests compare against.
"""

__version__ = "0.1.0"
