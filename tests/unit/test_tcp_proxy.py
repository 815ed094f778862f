"""The fault tests' TCP forwarder (tests/support/tcp_proxy.py) over a real echo server: it forwards, a cut drops
open connections and refuses new ones, and a restore forwards again on the same port."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from tests.support.tcp_proxy import TcpProxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    forwarder = TcpProxy("127.0.0.1", server.server_address[1]).start()
    yield forwarder
    forwarder.stop()
    server.shutdown()
    server.server_close()


def echoed(port: int, data: bytes, connection: socket.socket | None = None) -> bytes:
    connection = connection or socket.create_connection(("127.0.0.1", port), timeout=5)
    connection.sendall(data)
    return connection.recv(1024)


def test_it_forwards_cuts_and_restores_on_the_same_port(proxy):
    open_connection = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert echoed(proxy.port, b"hello", open_connection) == b"hello"

    proxy.cut()
    try:
        assert echoed(proxy.port, b"again", open_connection) == b""  # dropped: the peer closed it
    except ConnectionError:
        pass  # or reset, depending on timing
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)

    proxy.restore()
    assert echoed(proxy.port, b"back") == b"back"
