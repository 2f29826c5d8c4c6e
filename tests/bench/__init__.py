"""`lstm-sym bench`: its baseline and its report (nothing about speed is asserted)."""
