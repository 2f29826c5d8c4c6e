"""The Python binding of the generated C: building, caching, input checking, calls."""
