"""Loading a catalog row's image: a local file, or an http(s) URL fetched within limits and never from
a private network unless explicitly allowed.

How server-side request forgery and DNS rebinding are prevented:
- Every TCP connection goes through `_GuardedBackend`, an httpcore network backend. It resolves the host
  itself (`asyncio.get_running_loop().getaddrinfo`), checks *every* resolved address against the
  `AddressPolicy`, refuses the whole host if any one is refused, and then connects to one of the checked
  IP addresses, never to the name. The name is not resolved a second time, so a DNS answer that changes
  between the check and the connection (rebinding) cannot redirect us. TLS still verifies the
  certificate against the host name (httpcore passes the URL's host as SNI/server_hostname).
- Redirects are followed by hand, at most `max_redirects`; each target's scheme is checked, and a new
  host is resolved and checked by the same backend before anything is sent to it.
- Environment proxies are ignored: a proxy would resolve names itself, out of reach of the check.
- Local files are read only when `allow_local_files`; with `allowed_root` set, the path (symlinks
  resolved) must lie inside it.

Every failure is a typed error whose message can go straight into an import's per-row report.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import httpcore
import httpx

from orchestrator.errors import BadRequest, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) → the IP addresses to connect to, as strings; raises OSError when the name is unknown."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo, run by the event loop's thread pool)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


@dataclass(frozen=True)
class AddressPolicy:
    """Which IP addresses may be fetched from: public unicast ones, plus `allowed_networks`.

    allow_private_networks: allow everything (loopback, private, link-local, ...), e.g. for a demo.
    allowed_networks: CIDRs allowed although not public, e.g. ("10.20.0.0/16",) for an internal CDN.
    """

    allow_private_networks: bool = False
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=())

    @classmethod
    def build(cls, allow_private_networks: bool = False, allowed_networks: Iterable[str] = ()) -> AddressPolicy:
        try:
            networks = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        except ValueError as exc:
            raise InvalidInput(f"invalid allowed network: {exc}") from None
        return cls(allow_private_networks, networks)

    def refusal(self, address: str) -> str | None:
        """Why `address` is refused ("private", "loopback", ...), or None when it may be fetched from."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
        if self.allow_private_networks or any(ip in net for net in self.allowed_networks):
            return None
        return _non_public_kind(ip)

    def check(self, address: str, host: str) -> None:
        """raises: InvalidInput("refusing to fetch from private address 10.0.0.1 (host)") when refused."""
        kind = self.refusal(address)
        if kind is not None:
            named = "" if host == address else f" (resolved from {host!r})"
            raise InvalidInput(f"refusing to fetch from {kind} address {address}{named}")


def _non_public_kind(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return _non_public_kind(embedded)
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-public"


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address (see the module docstring)."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options=None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: no addresses")
        for address in addresses:
            self._policy.check(address, host)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("unix sockets are not fetched from")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _GuardedTransport(httpx.AsyncBaseTransport):
    """httpx transport over an httpcore pool whose every connection goes through `_GuardedBackend`."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver, max_connections: int) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            network_backend=_GuardedBackend(policy, resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = await self._pool.handle_async_request(core_request)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_ResponseStream(response.stream), extensions=response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


# httpcore's errors reach us unwrapped through our transport; httpx's own may come from the client.
_TIMEOUTS = (httpcore.TimeoutException, httpx.TimeoutException, TimeoutError)
_FETCH_FAILURES = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
                   httpx.HTTPError, OSError)


class ImageLoader:
    """Loads image bytes for catalog rows: `await loader.load("https://...")` or a local path.

    max_bytes: largest image accepted, enforced while streaming (and from Content-Length up front).
    timeout_s: wall-clock limit for one `load`, redirects and name resolution included.
    max_redirects: redirects followed before giving up; every target is re-checked.
    allow_local_files / allowed_root: whether local paths may be read, and the folder they must lie in
        (None: anywhere). Relative paths are taken relative to `allowed_root` (else the working folder).
        Uploaded CSVs should use allow_local_files=False or an allowed_root.
    allow_private_networks / allowed_networks: see `AddressPolicy`.
    resolver: host-name resolution (the system's by default); a test or a custom DNS may replace it.

    Use as `async with ImageLoader(...) as loader:` or call `aclose()`; the HTTP client is created on
    the first URL load, in the running event loop.
    """

    def __init__(self, *, max_bytes: int = 20_000_000, timeout_s: float = 10.0, max_redirects: int = 3,
                 allow_local_files: bool = True, allowed_root: Path | None = None,
                 allow_private_networks: bool = False, allowed_networks: Iterable[str] = (),
                 resolver: Resolver = system_resolver, max_connections: int = 32,
                 user_agent: str = "snapfit-catalog-import") -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self.allow_local_files = allow_local_files
        self.allowed_root = None if allowed_root is None else Path(os.path.realpath(allowed_root))
        self.policy = AddressPolicy.build(allow_private_networks, allowed_networks)
        self._resolver = resolver
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ImageLoader:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def load(self, ref: str) -> bytes:
        """The bytes of the image `ref` names: an http(s) URL or a local path.

        raises: InvalidInput (refused: private address, other URL scheme, path outside the allowed
            root, local files disabled), NotFound (no such file), PayloadTooLarge (over max_bytes),
            UnsupportedMediaType (the server's content type is not image/*), BadRequest (HTTP error
            status, timeout, too many redirects, connection failure).
        """
        ref = ref.strip()
        if _is_url(ref):
            return await self._fetch(ref)
        if "://" in ref:
            raise InvalidInput(f"unsupported image URL {ref!r}: only http and https are fetched")
        return await asyncio.to_thread(self._read_file, ref)

    async def _fetch(self, url: str) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._follow(_checked_url(url))
        except _TIMEOUTS:
            raise BadRequest(f"fetching {url} took longer than {self.timeout_s:g} s") from None
        except _FETCH_FAILURES as exc:
            raise BadRequest(f"could not fetch {url}: {exc or type(exc).__name__}") from None

    async def _follow(self, url: httpx.URL) -> bytes:
        client = self._http_client()
        for _ in range(self.max_redirects + 1):
            async with client.stream("GET", url) as response:
                if response.has_redirect_location:
                    url = _checked_url(response.headers["location"], base=url)
                    continue
                if response.status_code != 200:
                    raise BadRequest(f"HTTP {response.status_code} from {url}")
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if not content_type.startswith("image/"):
                    raise UnsupportedMediaType(
                        f"{url} is not an image (content type {content_type or 'missing'!r})")
                return await self._read_limited(response, url)
        raise BadRequest(f"more than {self.max_redirects} redirects fetching {url}")

    async def _read_limited(self, response: httpx.Response, url: httpx.URL) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(f"{url} is {declared} bytes; the limit is {self.max_bytes} bytes")
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > self.max_bytes:
                raise PayloadTooLarge(f"{url} is larger than the limit of {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _http_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=_GuardedTransport(self.policy, self._resolver, self._max_connections),
                timeout=httpx.Timeout(self.timeout_s),
                follow_redirects=False,
                trust_env=False,
                # identity: a compressed body would only be counted against max_bytes after inflating
                headers={"User-Agent": self._user_agent, "Accept": "image/*", "Accept-Encoding": "identity"},
            )
        return self._client

    def _read_file(self, ref: str) -> bytes:
        if not self.allow_local_files:
            raise InvalidInput(f"refusing to read local file {ref!r}: only http(s) image URLs are allowed here")
        path = Path(ref)
        if not path.is_absolute():
            path = (self.allowed_root or Path.cwd()) / path
        real = Path(os.path.realpath(path))
        if self.allowed_root is not None and not real.is_relative_to(self.allowed_root):
            raise InvalidInput(f"refusing to read {ref!r}: it is outside the allowed folder {self.allowed_root}")
        try:
            with open(real, "rb") as file:
                info = os.fstat(file.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise InvalidInput(f"image path {ref!r} is not a regular file")
                if info.st_size > self.max_bytes:
                    raise PayloadTooLarge(
                        f"image file {ref!r} is {info.st_size} bytes; the limit is {self.max_bytes} bytes")
                data = file.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise NotFound(f"image file not found: {ref}") from None
        except IsADirectoryError:
            raise InvalidInput(f"image path {ref!r} is a folder, not a file") from None
        except OSError as exc:
            raise BadRequest(f"cannot read image file {ref!r}: {exc.strerror or exc}") from None
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"image file {ref!r} is larger than the limit of {self.max_bytes} bytes")
        return data


def _is_url(ref: str) -> bool:
    return ref[:8].lower().startswith(("http://", "https://"))


def _checked_url(url: str, base: httpx.URL | None = None) -> httpx.URL:
    """`url` (relative to `base`, for a redirect's Location) as an httpx.URL.

    raises: InvalidInput for anything but an absolute http(s) URL with a host.
    """
    try:
        parsed = httpx.URL(url) if base is None else base.join(url)
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"invalid image URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInput(f"refusing to fetch {url!r}: only http(s) URLs with a host are fetched")
    return parsed
