"""Run a parity check once for real, then again on outputs computed elsewhere (another CPU).

A parity `measure(session, report)` only ever calls `session.get_outputs()` and `session.run(names, feeds)`.
`RecordingSession` wraps a real ONNX Runtime session and keeps every call's feeds; `ReplaySession` answers the
same calls, in the same order, with outputs that another process produced for those feeds (for example
ONNX Runtime under an emulated CPU), so the same measure code scores them against the same torch references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from export.errors import ExportError

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class OutputInfo:
    """What `session.get_outputs()` items offer that callers read."""

    name: str


@dataclass
class RecordingSession:
    """Forwards to `session`; `calls` holds (output names, feeds) of every run, in order."""

    session: object
    calls: list[tuple[list[str], dict[str, np.ndarray]]] = field(default_factory=list)

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, output_names: Sequence[str] | None, feeds: Feeds) -> list[np.ndarray]:
        names = list(output_names) if output_names else [o.name for o in self.session.get_outputs()]
        self.calls.append((names, {name: np.asarray(value) for name, value in feeds.items()}))
        return self.session.run(names, dict(feeds))


class ReplayMismatch(ExportError):
    """The replayed measure asked for something other than what was recorded (its code is not deterministic)."""


class ReplaySession:
    """Answers the recorded calls, in order, with `outputs[i]` (output name -> array) for call i."""

    def __init__(self, calls: Sequence[tuple[list[str], Feeds]], outputs: Sequence[Mapping[str, np.ndarray]],
                 output_names: Sequence[str]):
        if len(calls) != len(outputs):
            raise ReplayMismatch(f"{len(calls)} recorded calls but {len(outputs)} output sets")
        self._calls, self._outputs, self._names = list(calls), list(outputs), list(output_names)
        self._next = 0

    def get_outputs(self) -> list[OutputInfo]:
        return [OutputInfo(name) for name in self._names]

    def run(self, output_names: Sequence[str] | None, feeds: Feeds) -> list[np.ndarray]:
        if self._next >= len(self._calls):
            raise ReplayMismatch(f"call {self._next + 1} was not recorded")
        names, recorded = self._calls[self._next]
        if set(feeds) != set(recorded) or any(not np.array_equal(np.asarray(feeds[k]), recorded[k]) for k in feeds):
            raise ReplayMismatch(f"call {self._next + 1} has other feeds than were recorded")
        outputs = self._outputs[self._next]
        self._next += 1
        return [outputs[name] for name in (list(output_names) if output_names else names)]
