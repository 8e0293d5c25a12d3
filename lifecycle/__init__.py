"""Lifecycle: the shared domain package, in sub-packages by concern (core, model, stores, data,
training, decisions; tests/unit/test_architecture.py holds their order). Importing it imports
none of them."""

__version__ = "0.1.0"
