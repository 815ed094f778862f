"""Loading catalog images: local files inside an allowed root, and URL fetches with limits and SSRF guards.

The only network used is a small HTTP server these tests start on 127.0.0.1; addresses such as
10.0.0.1 or 169.254.169.254 appear only to be refused before any connection is made.
"""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.errors import BadRequest, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from orchestrator.ingest.image_source import AddressPolicy, ImageLoader

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200  # the loader moves bytes; decoding is not its job
LOCAL = ["127.0.0.1/32"]
BIG_BYTES = 64 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stopping = threading.Event()
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.big_bytes_sent = 0

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up mid-body is what the size and timeout tests do on purpose


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.requests.append((url.path, self.headers.get("Host", "")))
        query = parse_qs(url.query)
        if url.path == "/photo.png":
            self._reply(200, "image/png", PNG)
        elif url.path == "/page.html":
            self._reply(200, "text/html; charset=utf-8", b"<html></html>")
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/big-declared.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(BIG_BYTES))
            self.end_headers()
        elif url.path == "/big-undeclared.png":
            self._stream_big_body()
        elif url.path == "/slow.png":
            self.server.stopping.wait(10)
            self._reply(200, "image/png", PNG)
        else:
            self._reply(404, "text/plain", b"no such thing")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream_big_body(self) -> None:
        """No Content-Length (HTTP/1.0, body ends at close): only counting while streaming can stop it."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        chunk = b"\x00" * 65536
        for _ in range(BIG_BYTES // len(chunk)):
            self.wfile.write(chunk)
            self.server.big_bytes_sent += len(chunk)


@pytest.fixture
def server():
    http = _Server()
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield http
    http.stopping.set()
    http.shutdown()
    http.server_close()
    thread.join(timeout=5)


def _url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


# --- local files -------------------------------------------------------------------------------


async def test_load_reads_a_local_file_relative_to_the_allowed_root(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(PNG)

    async with ImageLoader(allowed_root=tmp_path) as loader:
        assert await loader.load("images/a.png") == PNG
        assert await loader.load(str(tmp_path / "images" / "a.png")) == PNG


@pytest.mark.parametrize("ref", ["../secret.png", "images/../../secret.png", "{outside}"])
async def test_load_refuses_paths_that_escape_the_allowed_root(tmp_path, ref):
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(PNG)

    async with ImageLoader(allowed_root=root) as loader:
        with pytest.raises(InvalidInput, match="outside the allowed folder"):
            await loader.load(ref.format(outside=tmp_path / "secret.png"))


async def test_load_refuses_a_symlink_inside_the_root_that_points_outside(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(PNG)
    os.symlink(tmp_path / "secret.png", root / "link.png")

    async with ImageLoader(allowed_root=root) as loader:
        with pytest.raises(InvalidInput, match="outside the allowed folder"):
            await loader.load("link.png")


async def test_load_reports_a_missing_file_as_not_found(tmp_path):
    async with ImageLoader(allowed_root=tmp_path) as loader:
        with pytest.raises(NotFound, match="image file not found: nope.png"):
            await loader.load("nope.png")


async def test_load_refuses_local_files_when_they_are_disabled(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)

    async with ImageLoader(allow_local_files=False) as loader:
        with pytest.raises(InvalidInput, match="only http"):
            await loader.load(str(tmp_path / "a.png"))


async def test_load_refuses_a_local_file_over_the_size_limit_and_a_folder(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)

    async with ImageLoader(allowed_root=tmp_path, max_bytes=len(PNG) - 1) as loader:
        with pytest.raises(PayloadTooLarge, match=f"limit is {len(PNG) - 1} bytes"):
            await loader.load("a.png")
        with pytest.raises(InvalidInput, match="not a regular file|is a folder"):
            await loader.load(".")


async def test_load_refuses_other_url_schemes():
    async with ImageLoader() as loader:
        for ref in ("ftp://example.com/a.png", "file:///etc/passwd"):
            with pytest.raises(InvalidInput, match="only http and https"):
                await loader.load(ref)


# --- address policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("address,kind", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.1", "private"), ("192.168.1.10", "private"), ("fc00::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1%eth0", "link-local"), ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"), ("100.64.0.1", "non-public"),
    ("93.184.216.34", None), ("2606:4700::1111", None),
])
def test_address_policy_refuses_every_non_public_kind_of_address(address, kind):
    assert AddressPolicy().refusal(address) == kind


def test_address_policy_allows_listed_networks_and_everything_when_private_networks_are_allowed():
    listed = AddressPolicy.build(allowed_networks=["10.20.0.0/16"])

    assert listed.refusal("10.20.3.4") is None and listed.refusal("10.21.0.1") == "private"
    assert AddressPolicy.build(allow_private_networks=True).refusal("127.0.0.1") is None


# --- URL fetches -------------------------------------------------------------------------------


async def test_fetch_refuses_a_loopback_url_by_default_without_connecting(server):
    async with ImageLoader() as loader:
        with pytest.raises(InvalidInput, match="refusing to fetch from loopback address 127.0.0.1"):
            await loader.load(_url(server, "/photo.png"))

    assert server.requests == []


async def test_fetch_refuses_a_host_name_that_resolves_to_loopback(server):
    async with ImageLoader() as loader:
        with pytest.raises(InvalidInput, match=r"loopback address .* \(resolved from 'localhost'\)"):
            await loader.load(f"http://localhost:{server.server_address[1]}/photo.png")

    assert server.requests == []


async def test_fetch_refuses_a_private_ip_literal():
    async with ImageLoader(timeout_s=2) as loader:
        with pytest.raises(InvalidInput, match="refusing to fetch from private address 10.0.0.1"):
            await loader.load("http://10.0.0.1/a.png")


async def test_fetch_downloads_from_loopback_when_private_networks_are_allowed(server):
    async with ImageLoader(allow_private_networks=True) as loader:
        assert await loader.load(_url(server, "/photo.png")) == PNG


async def test_fetch_refuses_a_host_when_any_of_its_addresses_is_private():
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]

    async with ImageLoader(resolver=resolver) as loader:
        with pytest.raises(InvalidInput, match="private address 10.1.2.3 \\(resolved from 'mixed.test'\\)"):
            await loader.load("http://mixed.test/a.png")


async def test_fetch_resolves_each_host_once_and_connects_to_the_checked_address(server):
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # a rebinding DNS: the second answer is private
    calls: list[str] = []

    async def rebinding_resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    port = server.server_address[1]
    async with ImageLoader(allowed_networks=LOCAL, resolver=rebinding_resolver) as loader:
        assert await loader.load(f"http://images.test:{port}/photo.png") == PNG

    assert calls == ["images.test"]
    assert server.requests == [("/photo.png", f"images.test:{port}")]  # the name, not the IP, as Host


async def test_fetch_follows_a_redirect_to_an_allowed_address(server):
    async with ImageLoader(allowed_networks=LOCAL) as loader:
        assert await loader.load(_url(server, "/redirect?to=/photo.png")) == PNG

    assert [path for path, _ in server.requests] == ["/redirect", "/photo.png"]


async def test_fetch_refuses_a_redirect_to_a_private_address(server):
    target = "http://169.254.169.254/latest/meta-data/"

    async with ImageLoader(allowed_networks=LOCAL, timeout_s=2) as loader:
        with pytest.raises(InvalidInput, match="link-local address 169.254.169.254"):
            await loader.load(_url(server, f"/redirect?to={target}"))


async def test_fetch_refuses_a_redirect_to_another_scheme(server):
    async with ImageLoader(allowed_networks=LOCAL) as loader:
        with pytest.raises(InvalidInput, match="only http"):
            await loader.load(_url(server, "/redirect?to=file:///etc/passwd"))


async def test_fetch_gives_up_after_max_redirects(server):
    loop = _url(server, "/redirect?to=/redirect%3Fto%3D/photo.png")

    async with ImageLoader(allowed_networks=LOCAL, max_redirects=1) as loader:
        with pytest.raises(BadRequest, match="more than 1 redirects"):
            await loader.load(loop)


async def test_fetch_stops_reading_a_body_past_max_bytes_while_streaming(server):
    async with ImageLoader(allowed_networks=LOCAL, max_bytes=100_000) as loader:
        with pytest.raises(PayloadTooLarge, match="larger than the limit of 100000 bytes"):
            await loader.load(_url(server, "/big-undeclared.png"))

    time.sleep(0.2)  # let the server notice the hang-up
    assert server.big_bytes_sent < BIG_BYTES


async def test_fetch_refuses_a_declared_content_length_over_max_bytes_before_reading(server):
    async with ImageLoader(allowed_networks=LOCAL, max_bytes=100_000) as loader:
        with pytest.raises(PayloadTooLarge, match=f"is {BIG_BYTES} bytes; the limit is 100000 bytes"):
            await loader.load(_url(server, "/big-declared.png"))


async def test_fetch_enforces_the_total_timeout(server):
    started = time.monotonic()

    async with ImageLoader(allowed_networks=LOCAL, timeout_s=0.3) as loader:
        with pytest.raises(BadRequest, match="took longer than 0.3 s"):
            await loader.load(_url(server, "/slow.png"))

    assert time.monotonic() - started < 2


async def test_fetch_refuses_a_non_image_content_type(server):
    async with ImageLoader(allowed_networks=LOCAL) as loader:
        with pytest.raises(UnsupportedMediaType, match="content type 'text/html'"):
            await loader.load(_url(server, "/page.html"))


async def test_fetch_reports_an_http_error_status(server):
    async with ImageLoader(allowed_networks=LOCAL) as loader:
        with pytest.raises(BadRequest, match="HTTP 404"):
            await loader.load(_url(server, "/missing.png"))


async def test_fetch_reports_a_refused_connection_as_bad_request(server):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()

    async with ImageLoader(allowed_networks=LOCAL) as loader:
        with pytest.raises(BadRequest, match="could not fetch"):
            await loader.load(f"http://127.0.0.1:{port}/photo.png")

