"""The real parts a benchmark runs against, each a child process on loopback that is stopped afterwards.

- ``Nginx``: the fast receiver, answering 204 on one or more ports and logging each hit with its time.
- ``PythonReceiver``: the fallback when nginx cannot run.
- ``HangServer``: accepts connections and never answers, until the client gives up.
- ``PrivateRedis``: a redis-server of our own, so that memory figures are ours alone and nothing
  touches the shared server's data.
- ``Worker``: the ``dramatiq`` command on ``bench.workerapp``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import children, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent

_NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format hits '$msec $server_port $status';
    access_log {tmp}/access.log hits;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
{listens}
        location / {{ return 204; }}
    }}
}}
"""


class Receiver:
    """A fast receiver that records the time of every hit in a log, one line per hit: 'seconds port status'."""

    ports: list[int]
    log: Path
    process: subprocess.Popen[Any]

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.ports[0]

    def hits(self) -> list[tuple[float, int]]:
        """(time, port) of every hit so far."""
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3:
                found.append((float(parts[0]), int(parts[1])))
        return found

    def count(self) -> int:
        try:
            with open(self.log, "rb") as log:
                return log.read().count(b"\n")
        except FileNotFoundError:
            return 0

    def reset(self) -> None:
        """Forget the hits so far (the log is truncated in place; the receiver keeps writing to it)."""
        with open(self.log, "r+b") as log:
            log.truncate(0)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        raise NotImplementedError


class Nginx(Receiver):
    kind = "nginx"

    def __init__(self, ports: int = 1) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hw-bench-nginx-"))
        self.ports = [free_port() for _ in range(ports)]
        self.log = self.tmp / "access.log"
        listens = "\n".join("        listen 127.0.0.1:%d backlog=4096;" % port for port in self.ports)
        conf = self.tmp / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(tmp=self.tmp, listens=listens))
        self.process = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self.tmp), "-e", str(self.tmp / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        try:
            wait_until(lambda: self.process.poll() is not None or _listening(self.ports), timeout=10, what="nginx")
            if self.process.poll() is not None:
                raise RuntimeError("nginx did not start: %s" % self.process.stderr.read().decode())  # type: ignore[union-attr]
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.process, signal.SIGQUIT)
        shutil.rmtree(self.tmp, ignore_errors=True)


class PythonReceiver(Receiver):
    """The fallback receiver: a threaded http.server in another process, as fast as Python gets."""

    kind = "python"

    def __init__(self, ports: int = 1, *, delay: float = 0.0) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hw-bench-recv-"))
        self.log = self.tmp / "access.log"
        self.log.touch()
        # It binds free ports itself and names them: ports picked here could be taken before it binds them,
        # by the outgoing connections of a run, when there are hundreds.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver", str(self.log), "--delay", str(delay), *["0"] * ports],
            cwd=ROOT, start_new_session=True,
        )
        named = self.tmp / "access.log.ports"
        wait_until(lambda: named.exists() or self.process.poll() is not None, timeout=30, what="the Python receiver")
        if not named.exists():
            raise RuntimeError("the Python receiver exited with %s" % self.process.returncode)
        self.ports = [int(line) for line in named.read_text().split()]

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)
        shutil.rmtree(self.tmp, ignore_errors=True)


def fast_receiver(ports: int = 1) -> Receiver:
    """nginx if it can run here, else the Python receiver."""
    if shutil.which("nginx"):
        try:
            return Nginx(ports)
        except (OSError, RuntimeError, TimeoutError) as exc:
            print("  note: nginx could not run (%s); using the Python receiver." % exc, flush=True)
    return PythonReceiver(ports)


class HangServer:
    """Accepts on each port, reads, never answers; the client's read timeout ends each attempt."""

    def __init__(self, ports: int) -> None:
        self.ports = [free_port() for _ in range(ports)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.hang", *map(str, self.ports)], cwd=ROOT, start_new_session=True,
        )
        wait_until(lambda: _listening(self.ports), timeout=10, what="the hanging server")

    def urls(self) -> list[str]:
        return ["http://127.0.0.1:%d" % port for port in self.ports]

    def __enter__(self) -> HangServer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _stop(self.process, signal.SIGTERM)


class PrivateRedis:
    """A redis-server of our own on a free loopback port, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="hw-bench-redis-"))
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp), "--logfile", str(self.tmp / "redis.log")],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(lambda: _listening([self.port]), timeout=10, what="redis-server")
        self.url = "redis://127.0.0.1:%d/0" % self.port

    def __enter__(self) -> PrivateRedis:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _stop(self.process, signal.SIGTERM)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Worker:
    """``dramatiq bench.workerapp --processes 1 --threads N --queues ...``, configured by ``BENCH_WORKER``."""

    def __init__(self, config: dict[str, Any], *, queues: list[str], threads: int = 8,
                 env: dict[str, str] | None = None, verbose: bool = False, prefix: list[str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hw-bench-worker-"))
        self.log = self.tmp / "worker.log"
        environment = {**os.environ, **(env or {}), "BENCH_WORKER": json.dumps(config),
                       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                # A prefix runs the command under another program (valgrind for the instructions benchmark).
                [*(prefix or []), sys.executable, "-m", "dramatiq", "bench.workerapp", "--processes", "1",
                 "--threads", str(threads), "--queues", *queues, *(["--verbose"] if verbose else [])],
                cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def worker_pid(self) -> int:
        """The pid of the worker process (the dramatiq command forks it)."""
        found = wait_until(lambda: children(self.process.pid), timeout=20, what="the worker")
        return int(found[0])

    def alive(self) -> bool:
        return self.process.poll() is None

    def count_lines(self, text: str) -> int:
        """Lines of the worker's log so far that contain ``text``."""
        return sum(text in line for line in self.log.read_text(errors="replace").splitlines())

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> None:
        """Stop the worker politely, and for good if it has not exited within ``timeout`` seconds."""
        _stop(self.process, signal.SIGTERM, timeout=timeout)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _listening(ports: list[int]) -> bool:
    import socket

    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
    return True


def _stop(process: subprocess.Popen[Any], sig: int, timeout: float = 10) -> None:
    """Stop a child we started (and its process group, which it leads): politely, then for good."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    else:
        # The leader is gone; make sure nothing of its group is left.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def wait_briefly() -> None:
    time.sleep(0.2)
