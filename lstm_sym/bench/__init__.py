"""``lstm-sym bench``: time the generated kernels against PyTorch and a seed-style NumPy LSTM.

Modules: :mod:`.workloads` (the implementations and the flop count), :mod:`.seed_style` (the
hand-written baseline), :mod:`.worker` (one configuration in its own process), :mod:`.runner`
(the grid), :mod:`.report` (table, plot), :mod:`.command` (the CLI options).
"""
