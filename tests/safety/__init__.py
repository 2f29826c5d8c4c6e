"""Hostile input (issue 15): bad-input tables, property tests, probes in processes of their own."""
