"""Client-side halves of each model contract (resizing, prompt coordinates, tokenisation); numpy and PIL only, so the orchestrator can import them without torch."""
