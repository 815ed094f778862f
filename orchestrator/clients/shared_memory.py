"""Large tensors through Triton's system shared memory, when the orchestrator and Triton share a host.

A click sends the photo's 4 MB SAM embedding and gets back 1 MB of low-resolution mask logits; over gRPC those
bytes are serialised, copied through the socket and parsed again on the other side. With
`SNAPFIT_TRITON__SHARED_MEMORY=true` an input of at least `shared_memory_min_bytes` is written once into a POSIX
shared-memory region that Triton has registered, and the request names the region instead of carrying the bytes;
an output whose size the model's config fixes, and that is as large, is written by Triton into such a region.
Regions are pooled (one per tensor of a call in flight, reused, sized to powers of two) and registered once each.
Only for one Triton on the same host: a region registered with one server means nothing to another (`snapfit up`
turns it on; the Kubernetes manifests leave it off).

A region is a file in /dev/shm, where Linux keeps POSIX shared memory (Triton's shm_open("/name") opens the
same object), mapped here with mmap. Not tritonclient's helpers: version 2.51 imports `pkg_resources`, which
current setuptools no longer ships; and not `multiprocessing.shared_memory`, which starts a resource-tracker
process in whatever process uses it.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcclient

SHM_FOLDER = Path("/dev/shm")


class SharedMemory:
    """A new POSIX shared-memory object /dev/shm/<name> of `size` bytes, mapped into this process."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, size
        fd = os.open(SHM_FOLDER / name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            self.buf = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    @property
    def key(self) -> str:
        """What Triton's register call takes (shm_open's name)."""
        return f"/{self.name}"

    def array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.ndarray(shape, dtype, buffer=self.buf)

    def remove(self) -> None:
        self.buf.close()
        (SHM_FOLDER / self.name).unlink(missing_ok=True)


@dataclass
class Region:
    """One pooled region: Triton knows it by `name`, the shared-memory object's name too; size in bytes."""

    name: str
    size: int
    memory: SharedMemory

    @property
    def key(self) -> str:
        return self.memory.key


class Regions:
    """A pool of registered shared-memory regions; one region holds one input or output tensor of one call."""

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
        region.memory.array(value.shape, value.dtype)[...] = value
        tensor = grpcclient.InferInput(name, list(value.shape), dtype)
        tensor.set_shared_memory(region.name, value.nbytes)
        return tensor, region

    async def output(self, client: grpcclient.InferenceServerClient, name: str,
                     nbytes: int) -> tuple[grpcclient.InferRequestedOutput, Region]:
        """An InferRequestedOutput that Triton writes into a region of at least `nbytes`; read it with `read`
        before releasing the region."""
        region = await self._acquire(client, nbytes)
        tensor = grpcclient.InferRequestedOutput(name)
        tensor.set_shared_memory(region.name, nbytes)
        return tensor, region

    @staticmethod
    def read(region: Region, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A copy of the tensor Triton wrote into `region` (the region goes back to the pool after the call)."""
        return region.memory.array(shape, dtype).copy()

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
            region.memory.remove()
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
                region = Region(name, size, SharedMemory(name, size))
                self._created.append(region)
            if region.name not in self._registered:
                try:
                    await client.register_system_shared_memory(region.name, region.key, region.size)
                except Exception:
                    self._free.append(region)
                    raise
                self._registered.add(region.name)
            return region
