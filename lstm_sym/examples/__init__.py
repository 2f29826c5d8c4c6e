"""Runnable examples: ``python -m lstm_sym.examples.train`` (``lstm-sym train-example``)."""
