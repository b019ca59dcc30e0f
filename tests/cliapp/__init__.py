"""A small app for the command-line tests' own worker processes (they share no memory with the tests)."""
