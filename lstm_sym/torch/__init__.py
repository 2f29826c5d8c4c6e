"""The cells inside PyTorch: operators with the derived backward (:mod:`.ops`) and a module
with ``nn.LSTM``'s interface (:class:`RNN`, :mod:`.rnn`). Importing this package imports torch;
nothing else in ``lstm_sym`` imports it at module level."""

from __future__ import annotations

from . import ops
from .rnn import RNN

__all__ = ["RNN", "ops"]
