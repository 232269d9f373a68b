"""Utilities: test doubles for the backend protocol."""
