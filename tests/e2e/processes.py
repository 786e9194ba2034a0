"""A real `dramatiq` command running the tests' broker module, with its log read as it comes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .rabbitmq_node import free_port

ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(r"\[PID (\d+)\].*Worker process is ready for action")


class DramatiqCommand:
    """``python -m dramatiq tests.e2e.worker_broker --processes 1``: a main process and one worker process."""

    def __init__(self, env: dict[str, str], workdir: Path, *, threads: int = 8) -> None:
        # Dramatiq 1.x adds its Prometheus middleware, whose exposition server would bind 0.0.0.0:9191 and
        # whose files live in a folder of /tmp that every dramatiq process there shares: kept apart here.
        prometheus = {"dramatiq_prom_host": "127.0.0.1", "dramatiq_prom_port": str(free_port()),
                      "dramatiq_prom_lock": str(workdir / "prometheus.lock"),
                      "dramatiq_prom_db": str(workdir / "prometheus")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "tests.e2e.worker_broker",
             "--processes", "1", "--threads", str(threads)],
            env={**env, **prometheus, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                 "HYBISCUS_WEBHOOKS_SETTINGS": "tests.e2e.worker_settings"},
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # Its own process group, which the worker process joins: see stop().
        )
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="dramatiq-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [match for line in self.lines if (match := pattern.search(line))][:1]
            return bool(found) or self._ended

        with self._changed:
            self._changed.wait_for(seen, timeout)
        if not found:
            raise AssertionError("dramatiq never logged %r within %s s:\n%s" % (pattern.pattern, timeout, self.log()))
        return found[0]

    def worker_pid(self, timeout: float = 120.0) -> int:
        """The PID of the worker process, once it is ready for action."""
        pid = int(self.wait_for(_READY, timeout).group(1))
        if pid == self.process.pid:
            raise AssertionError("Expected a worker process apart from the main one:\n" + self.log())
        return pid

    def kill_worker(self) -> None:
        """``kill -9`` the worker process; the main process then notices and exits."""
        os.kill(self.worker_pid(), signal.SIGKILL)
        self.process.wait(timeout=60)

    def stop(self, timeout: float = 60.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # The main process stops its worker gracefully.
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # The group of this command only.
                self.process.wait()
        self._reader.join(timeout=timeout)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def log(self) -> str:
        with self._changed:
            return "".join(self.lines[-60:])
