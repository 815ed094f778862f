"""Errors raised while exporting models."""


class ExportError(Exception):
    """An export could not be produced (bad checkpoint, unknown model name, I/O mismatch)."""


class ExportParityError(ExportError):
    """The exported ONNX model disagrees with torch beyond a metric's threshold; `report` has every metric."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report  # the ParityReport that failed (None when nothing was measured)
