"""Entry points: the CLI (and, as they land, the API and the console)."""
