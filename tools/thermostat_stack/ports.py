"""Loopback ports for the stack's servers: free ones on request, and a clear message for a taken one."""

from __future__ import annotations

import errno
import socket


class PortInUseError(RuntimeError):
    """A port the stack was asked to use is already taken by another process."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(
            f"port {port} on 127.0.0.1 (for {what}) is already in use by another process: "
            f"stop that process (e.g. `ss -ltnp 'sport = :{port}'` shows it) or choose another port"
        )
        self.port = port
        self.what = what


def free_port() -> int:
    """A free TCP port on 127.0.0.1: bind port 0, read it back, release it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def claim_port(port: int | None, what: str) -> int:
    """``port`` when it is free (a free one when ``None``); :class:`PortInUseError` when it is taken."""
    if port is None or port == 0:
        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(port, what) from None
            raise
    return port


def address_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
