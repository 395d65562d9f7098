"""Adapters: the store and the institutions, each behind a port of :mod:`haqq.ports`."""
