"""Neighbourhood alerts: the pipeline from sources to residents' inboxes and back."""

__version__ = "0.1.0"
