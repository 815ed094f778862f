"""Virtual try-on: a LaDI-VTON-compatible pipeline on diffusers + transformers, and person preprocessing."""
