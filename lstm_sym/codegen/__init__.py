"""Emitters: each prints the derivation's plain data (``lstm_sym.derive.Derivation``)."""
