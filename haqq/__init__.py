"""haqq: an engine for proactive social services."""

__version__ = "0.1.0"

#: Recorded on every case at detection, so changed steps never break cases in flight.
PIPELINE_VERSION = "2026.11.1"
