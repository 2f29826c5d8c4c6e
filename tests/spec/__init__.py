"""Cell specs: validation errors that name the equation, user spec files through the CLI."""
