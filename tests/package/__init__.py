"""The repository as a whole: lint and format."""
