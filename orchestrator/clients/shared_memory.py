"""Large request tensors through Triton's system shared memory, when the orchestrator and Triton share a host.

A click sends the photo's 4 MB SAM embedding; over gRPC those bytes are serialised into the request, copied
through the socket and parsed again in Triton. With `SNAPFIT_TRITON__SHARED_MEMORY=true` an input of at least
`shared_memory_min_bytes` is written once into a POSIX shared-memory region that Triton has registered, and the
request names the region instead of carrying the bytes. Regions are pooled (one per call in flight, reused,
sized to powers of two) and registered once each. Only for one Triton on the same host: a region registered with
one server means nothing to another (`snapfit up` turns it on; the Kubernetes manifests leave it off).

The regions are Python's `multiprocessing.shared_memory` objects (tritonclient 2.51's own helpers import
`pkg_resources`, which current setuptools no longer ships).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory

import numpy as np
import tritonclient.grpc.aio as grpcclient


@dataclass
class Region:
    """name: Triton's name for it and the POSIX shared-memory object /dev/shm/<name>; size in bytes."""

    name: str
    size: int
    memory: SharedMemory

    @property
    def key(self) -> str:
        return f"/{self.name}"


class InputRegions:
    """A pool of registered shared-memory regions for request inputs; one region holds one tensor of one call."""

    def __init__(self) -> None:
        self.prefix = f"snapfit-{os.getpid()}-{secrets.token_hex(4)}"
        self._created: list[Region] = []
        self._free: list[Region] = []
        self._registered: set[str] = set()
        self._lock = asyncio.Lock()

    async def put(self, client: grpcclient.InferenceServerClient, name: str, value: np.ndarray,
                  dtype: str) -> tuple[grpcclient.InferInput, Region]:
        """An InferInput whose data lies in a registered region (written here); release the region after the call."""
        region = await self._acquire(client, value.nbytes)
        np.ndarray(value.shape, value.dtype, buffer=region.memory.buf)[...] = value
        tensor = grpcclient.InferInput(name, list(value.shape), dtype)
        tensor.set_shared_memory(region.name, value.nbytes)
        return tensor, region

    def release(self, region: Region) -> None:
        self._free.append(region)

    def forget_registrations(self) -> None:
        """After Triton lost them (it restarted): each region registers again on its next use."""
        self._registered.clear()

    async def close(self, client: grpcclient.InferenceServerClient) -> None:
        for region in self._created:
            if region.name in self._registered:
                try:
                    await client.unregister_system_shared_memory(region.name)
                except Exception:  # Triton already gone: the region is removed below all the same
                    pass
            region.memory.close()
            region.memory.unlink()
        self._created, self._free = [], []
        self._registered.clear()

    async def _acquire(self, client: grpcclient.InferenceServerClient, nbytes: int) -> Region:
        async with self._lock:
            fitting = [r for r in self._free if r.size >= nbytes]
            if fitting:
                region = min(fitting, key=lambda r: r.size)
                self._free.remove(region)
            else:
                size = 1 << max(nbytes - 1, 1).bit_length()
                index = len(self._created)
                name = f"{self.prefix}-{index}"
                region = Region(name, size, SharedMemory(name=name, create=True, size=size))
                self._created.append(region)
            if region.name not in self._registered:
                try:
                    await client.register_system_shared_memory(region.name, region.key, region.size)
                except Exception:
                    self._free.append(region)
                    raise
                self._registered.add(region.name)
            return region
