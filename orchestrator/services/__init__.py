"""Workflows (segment, search, catalog import); no fastapi here."""
