"""Where a server listens: loopback checks and a socket bound before anything is announced.

Binding first turns an unusable address into one line (exit 2) instead of a traceback from deep in
uvicorn after "serving at ..." was already printed; the same socket is then handed to uvicorn, so no other
process can take the port in between.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from mindset.errors import MindsetError


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (localhost, 127.x, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (not yet listening), or a MindsetError saying why it cannot be."""
    if not 0 <= port <= 65535:
        raise MindsetError(f"--port {port}: a TCP port is between 0 and 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise MindsetError(f"--host {host}: not an address this machine can bind ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port in TIME_WAIT is free
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise MindsetError(f"port {port} on {host} is already in use; stop what listens there or choose another --port") from None
        raise MindsetError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.set_inheritable(True)
    return sock


def run(app, sock: socket.socket) -> None:
    """Serve `app` with uvicorn on an already bound socket until Ctrl-C."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
