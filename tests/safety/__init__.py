"""Hostile and malformed input: each refused with a clear error, never a crash."""
