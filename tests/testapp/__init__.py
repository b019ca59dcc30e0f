"""The app the test suite runs: procedures that record what happened to them."""
