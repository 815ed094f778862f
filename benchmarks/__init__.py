"""Benchmarks behind `snapfit bench` (torch vs ONNX Runtime vs Triton); see issue 5."""
