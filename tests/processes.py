"""Real processes for the tests: started in their own session, read line by line as they print, always killed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

import pytest


class Process:
    """A subprocess whose output (stdout and stderr, merged) is collected as it comes, so a test can wait for a line."""

    def __init__(self, name: str, args: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.popen = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            # Its own process group, so that stop() also reaches the children (dramatiq forks workers).
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._closed = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="read-%s" % name, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, *, timeout: float = 30.0, count: int = 1) -> list[str]:
        """The first ``count`` lines matching ``pattern`` (a regex), once printed; fails if the process ends first."""
        found = re.compile(pattern)

        def matches() -> list[str]:
            return [line for line in self.lines if found.search(line)]

        with self._changed:
            self._changed.wait_for(lambda: len(matches()) >= count or self._closed, timeout)
            lines = matches()
        if len(lines) < count:
            state = "exited with %s" % self.popen.poll() if self._closed else "still running"
            pytest.fail("%s printed %d of %d lines matching %r in %s s (%s):\n%s"
                        % (self.name, len(lines), count, pattern, timeout, state, self.tail()))
        return lines[:count]

    def matching(self, pattern: str) -> list[str]:
        found = re.compile(pattern)
        with self._changed:
            return [line for line in self.lines if found.search(line)]

    def tail(self, lines: int = 40) -> str:
        with self._changed:
            return "\n".join(self.lines[-lines:])

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the process, which stops its children (dramatiq does); then SIGKILL to what is left."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever of its group is left, a child that outlived its parent included.
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # The group is gone.
        self.popen.wait(timeout)
        self._reader.join(timeout)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@pytest.fixture
def start_process() -> Iterator[Callable[..., Process]]:
    """Starts a Process that is stopped at the end of the test; pytest shows its output if the test failed."""
    started: list[Process] = []

    def start(name: str, args: Sequence[str], *, env: dict[str, str] | None = None) -> Process:
        process = Process(name, args, env=env)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()
    for process in started:
        # Captured by pytest, which shows it for a failed test only.
        heading = "----- %s (exit %s) -----" % (process.name, process.popen.returncode)
        sys.stderr.write("\n%s\n%s\n" % (heading, process.tail(200)))
