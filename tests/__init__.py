"""The tests, arranged like the code: one folder per stage (see each folder's docstring)."""
