"""Programs as data: the catalogue, its parameters by effective date, and their evaluation.

Pure: no database, no HTTP, no clock. Dates come in as values.
"""
