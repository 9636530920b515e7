"""trigger-local: Trigger.dev for Python, on one machine, offline."""

__version__ = "0.1.0"
