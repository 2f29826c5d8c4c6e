"""The emitters and `lstm-sym generate`: fresh, deterministic, readable generated files."""
