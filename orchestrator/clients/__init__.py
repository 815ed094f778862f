"""Clients of the services the orchestrator calls (Triton)."""
