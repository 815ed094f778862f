"""torch -> ONNX exporters for every network snapfit serves, each with a parity check against torch."""
