"""The listening socket of ``metarec serve``, bound before the model and the store load."""

from __future__ import annotations

import errno
import socket

from metarec.errors import ConfigError

MAX_PORT = 65535


def bind_listener(host: str, port: int) -> socket.socket:
    """Resolve ``host`` and bind a TCP socket to ``host:port``; raise ConfigError on failure.

    The socket is handed to uvicorn, so no other process can take the port between
    this check and the start of the server.
    """
    if not 1 <= port <= MAX_PORT:
        raise ConfigError(f"--port {port} is out of range; pass a TCP port from 1 to {MAX_PORT}")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        raise ConfigError(
            f"--host {host!r} does not resolve ({error}); pass an IP address such as "
            "127.0.0.1 or a host name this machine can resolve"
        ) from None
    family, kind, protocol, _name, address = found[0]
    listener = socket.socket(family, kind, protocol)
    # uvicorn sets the same option, so a restart can rebind while old connections close.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise ConfigError(_bind_message(host, port, error)) from None
    return listener


def _bind_message(host: str, port: int, error: OSError) -> str:
    where = f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; stop the other server or pass --port N"
    if error.errno == errno.EACCES:
        return (
            f"no permission to listen on {where} (ports below 1024 need root); "
            "pass --port 1024 or higher"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"--host {host} is not an address of this machine, so {where} cannot be bound; "
            "pass 127.0.0.1, 0.0.0.0 or one of its addresses"
        )
    return f"cannot listen on {where}: {error.strerror}; check --host and --port"
