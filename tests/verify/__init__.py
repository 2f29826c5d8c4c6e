"""The references themselves: the exact model against the direct SymPy model."""
