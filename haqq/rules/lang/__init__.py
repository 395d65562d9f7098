"""The rule language (work in progress)."""
