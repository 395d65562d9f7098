"""Benchmarks, run by ``haqq bench ...``; each prints its figures, ``--json`` as one object."""
