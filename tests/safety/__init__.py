"""Hostile and malformed input (issue 15): bad-input tables, property tests, probes in processes of
their own; each input refused with a clear error, never a crash."""
