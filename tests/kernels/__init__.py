"""The generated kernels (NumPy and C): their contract, errors and numbers against the
references (exact model, finite differences, PyTorch, float64)."""
