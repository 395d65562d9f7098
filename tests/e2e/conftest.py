"""The e2e tests' shared fixtures: the served console (see :mod:`tests.e2e.console_server`)."""

from tests.e2e.console_server import console_server, replayed_year

__all__ = ["console_server", "replayed_year"]
