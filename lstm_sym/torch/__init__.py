"""The cells inside PyTorch. Importing this package imports torch; nothing else in ``lstm_sym``
imports it at module level."""
