"""A private RabbitMQ node for tests that stop, restart or reconfigure a broker.

The shared node on 5672 is never touched: this one has its own node name, ports, data and log
directories, Erlang cookie and configuration files, all under one temporary directory, and
listens on loopback only. Stopping it and starting it again reuses the same data directory, so
durable queues and persistent messages survive as they would on a real restart.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ..conftest import IN_CI

# The Debian package's /usr/sbin scripts re-run themselves through `su rabbitmq` when started
# as root, which drops our environment; the scripts they wrap take it as it is.
_SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin",)


def find_script(name: str) -> str | None:
    for directory in _SCRIPT_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NodeUnavailable(RuntimeError):
    """The private node could not be started here."""


class PrivateRabbitmqNode:
    def __init__(
        self, base: Path, *, consumer_timeout: int | None = None, channel_tick_interval: int | None = None,
        config: str = "",
    ) -> None:
        server, ctl = find_script("rabbitmq-server"), find_script("rabbitmqctl")
        if server is None or ctl is None:
            raise NodeUnavailable("rabbitmq-server and rabbitmqctl are not installed.")
        self.server, self.ctl_path = server, ctl
        self.base = base
        self.name = "hw-test-%s@localhost" % secrets.token_hex(4)
        self.port = free_port()
        self.dist_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        base.mkdir(parents=True, exist_ok=True)
        cookie = base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")  # Instead of /etc/rabbitmq's, which names the shared node.
        lines = ["listeners.tcp.default = 127.0.0.1:%d" % self.port]
        if consumer_timeout is not None:
            lines.append("consumer_timeout = %d" % consumer_timeout)
        # Then the caller's own rabbitmq.conf lines, as an operator would write them.
        (base / "rabbitmq.conf").write_text("\n".join(lines) + "\n" + config)
        # How often a channel checks its consumers' timeouts: 60 s unless told.
        ticks = "{channel_tick_interval, %d}" % channel_tick_interval if channel_tick_interval else ""
        (base / "advanced.config").write_text("[{rabbit, [%s]}].\n" % ticks)
        self.env = {
            **os.environ,
            "HOME": str(base),  # Where the node and rabbitmqctl find the cookie.
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return "amqp://guest:guest@127.0.0.1:%d/%%2F" % self.port

    def start(self, timeout: float = 120.0) -> None:
        """Start the node (again, on the same data) and return once it accepts AMQP connections."""
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - closed with the process
        # A group of its own: the script runs the Erlang VM as its child, and kill() must end both.
        self.process = subprocess.Popen([self.server], env=self.env, cwd=self.base, stdout=log, stderr=log,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._accepts_connections():
            if self.process.poll() is not None:
                raise NodeUnavailable("rabbitmq-server exited with %d:\n%s" % (self.process.returncode, self.output()))
            if time.monotonic() > deadline:
                self.kill()
                raise NodeUnavailable("The node did not listen within %s s:\n%s" % (timeout, self.output()))
            time.sleep(0.2)
        self.ctl("await_startup", "--timeout", str(int(timeout)))

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node as an operator would, and wait for its processes to end; kill them if that fails."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.ctl("stop", str(self.base / "node.pid"), timeout=timeout)  # Returns once the VM has exited.
            self.process.wait(timeout=timeout)
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # This node's group only.
            self.process.wait()

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        result = subprocess.run(
            [self.ctl_path, "-q", "-n", self.name, *args], env=self.env, cwd=self.base,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError("rabbitmqctl %s failed (%d): %s" % (" ".join(args), result.returncode, result.stderr))
        return result.stdout

    def message_counts(self) -> dict[str, int]:
        """Messages in each queue, ready or unacknowledged, as the node itself counts them."""
        output = self.ctl("list_queues", "--no-table-headers", "name", "messages")
        return {name: int(count) for name, count in (line.split("\t") for line in output.splitlines() if line)}

    def wait_until_empty(self, *queues: str, timeout: float = 60.0) -> None:
        """Return once these queues hold no message, ready or unacknowledged: nothing more can come of them."""
        deadline = time.monotonic() + timeout
        while any(self.message_counts().get(queue, 0) for queue in queues):
            if time.monotonic() > deadline:
                raise TimeoutError("Queues %s still hold messages after %s s: %r" % (
                    queues, timeout, self.message_counts()))
            time.sleep(0.2)  # Each look costs a rabbitmqctl run; the node has no way to tell us.

    def output(self) -> str:
        path = self.base / "server.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _accepts_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True


def start_private_node(base: Path, **options: Any) -> PrivateRabbitmqNode:
    """A started node, or a skip (a failure in CI) naming why there is none."""
    import pytest

    try:
        node = PrivateRabbitmqNode(base, **options)
        node.start()
    except NodeUnavailable as exc:
        if IN_CI:
            pytest.fail("A private RabbitMQ node is needed in CI: %s" % exc)
        pytest.skip("No private RabbitMQ node: %s" % exc)
    return node
