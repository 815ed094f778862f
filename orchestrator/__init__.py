"""snapfit orchestrator: the CLI, the Triton launcher and (later) the FastAPI service."""
