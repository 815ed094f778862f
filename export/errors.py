"""Errors raised while exporting models."""


class ExportError(Exception):
    """An export could not be produced (bad checkpoint, unknown model name, I/O mismatch)."""


class ExportParityError(ExportError):
    """The exported ONNX model disagrees with torch beyond a metric's threshold."""
