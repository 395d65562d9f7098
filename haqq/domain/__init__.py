"""The pure domain of haqq: no database, no HTTP, no clock. Time and data come in as values."""
