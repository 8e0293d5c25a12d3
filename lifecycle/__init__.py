"""Lifecycle: the shared domain package (settings, data, training, registry, prediction store)."""

__version__ = "0.1.0"
