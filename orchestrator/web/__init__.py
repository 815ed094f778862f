"""The shopper's page (`/`) and the catalog admin page (`/admin`): static HTML, CSS and JavaScript modules served
by the orchestrator itself, no build step and nothing fetched from elsewhere, so they work offline. The pages
call only the public API; this package serves files and two generated sample photos, nothing else."""

from orchestrator.web.pages import install

__all__ = ["install"]
