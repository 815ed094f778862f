"""snapfit's shared core and the top of the house.

- `snapfit.contract`: model names, tensors, request limits and ports every package agrees on (a leaf).
- `snapfit.preprocessing`: the client-side halves of the model contracts (numpy and PIL only).
- `snapfit.triton`: starting a real tritonserver, and its generic ONNX Runtime backend for CPU configs.
- `snapfit.demo_catalog`: the synthetic demo catalog.
- `snapfit.cli`: the `snapfit` command; it imports everything, and nothing imports it.
"""
