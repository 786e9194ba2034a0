"""A private redis-server for tests that restart Redis or change its configuration.

The shared Redis on 6379 is never touched: this one has its own port on loopback, its own
configuration file and its own data directory, under one temporary directory. Starting it again
reads the same data, as a real restart would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from .rabbitmq_node import free_port


class RedisUnavailable(RuntimeError):
    """The private redis-server could not be started here."""


class PrivateRedis:
    def __init__(self, base: Path, config: str) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RedisUnavailable("redis-server is not installed.")
        self.server, self.base, self.port = server, base, free_port()
        base.mkdir(parents=True, exist_ok=True)
        # Ours first, then the operator's lines; no snapshots, so that only what the lines turn on persists.
        (base / "redis.conf").write_text(
            'port %d\nbind 127.0.0.1\ndir %s\nsave ""\nlogfile %s\n%s'
            % (self.port, base, base / "server.log", config)
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def client(self) -> redis.Redis[bytes]:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen([self.server, str(self.base / "redis.conf")], cwd=self.base,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.exceptions.BusyLoadingError:
                    pass  # Reading its data back: it answers once done.
                except redis.exceptions.ConnectionError as exc:
                    if self.process.poll() is not None:
                        raise RedisUnavailable("redis-server exited with %d:\n%s"
                                               % (self.process.returncode, self.log())) from exc
                if time.monotonic() > deadline:
                    self.kill()
                    raise RedisUnavailable("redis-server did not answer within %s s:\n%s" % (timeout, self.log()))
                time.sleep(0.05)  # Nothing to wait on but its socket.

    def shutdown_without_snapshot(self, timeout: float = 10.0) -> None:
        """``SHUTDOWN NOSAVE``: a stop that writes no snapshot, as a crash would not (the AOF is still flushed)."""
        assert self.process is not None
        # On a bare socket: redis-py would take the closed connection for a failure and retry for seconds.
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as connection:
            connection.sendall(b"SHUTDOWN NOSAVE\r\n")
            assert connection.recv(1024) == b"", "redis-server answered instead of stopping"
        self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        path = self.base / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
