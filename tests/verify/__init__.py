"""The references and the tests' inputs themselves: the exact model against the direct SymPy
model, the random problems every kernel test draws."""
