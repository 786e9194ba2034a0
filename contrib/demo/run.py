"""Runs the demo: everything in this process, on the real retry schedule.

With no broker URL the broker is Dramatiq's in-memory StubBroker and a Worker runs in a thread,
so nothing needs to be installed or running. The report server is the reference one, served by
uvicorn in a thread; the receivers are hybiscus_webhooks_contrib.receiver.
"""

from __future__ import annotations

import json
import queue
import secrets
import shlex
import socket
import sys
import threading
import time
import urllib.request
from typing import Any, TextIO
from urllib.parse import urlsplit

import dramatiq
import uvicorn
from dramatiq.brokers.stub import StubBroker

from hybiscus_webhooks import ImproperlyConfigured, settings
from hybiscus_webhooks.sealing import new_key

from ..receiver import WebhookReceiver
from ..report_server import ServerConfig, broker_from_url, build_pipeline, create_app, store_for
from . import samples
from .progress import Note, Progress, short

#: How many calls the flaky receiver fails: its webhook arrives on the third attempt, 30 s + 1 min later.
FLAKY_FAILURES = 2


def run(
    *, broker_url: str | None = None, port: int = 8000, once: bool = False, timeout: float = 240.0,
    out: TextIO = sys.stdout,
) -> int:
    """Run until Ctrl-C, or with ``once`` until the sample webhooks arrived (0) or ``timeout`` passed (1)."""
    try:
        listener = socket.create_server(("127.0.0.1", port))
    except OSError as exc:
        print("error: cannot listen on 127.0.0.1:%d (%s): pass --port with a free port, or 0 for any."
              % (port, exc.strerror), file=sys.stderr)
        return 2
    try:
        demo = Demo(listener, broker_url=broker_url, out=out)
    except ImproperlyConfigured as exc:
        listener.close()
        print("error: %s" % exc, file=sys.stderr)
        return 2
    try:
        demo.start()
        return demo.follow(once=once, timeout=timeout)
    except KeyboardInterrupt:
        return 0
    except BrokerUnreachable as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    finally:
        demo.stop()


class BrokerUnreachable(Exception):
    """The broker named by --broker did not answer."""


class Demo:
    def __init__(self, listener: socket.socket, *, broker_url: str | None, out: TextIO) -> None:
        self.out = out
        self.listener = listener
        self.broker_url = broker_url
        self.api_key = secrets.token_urlsafe(32)
        # A fresh namespace per run: a real broker may still hold an earlier demo's retries.
        self.config = ServerConfig(
            api_keys=(self.api_key,), base_url="http://127.0.0.1:%d" % listener.getsockname()[1],
            broker_url=broker_url, namespace="hybiscus_demo_%s" % secrets.token_hex(4), task_ttl=3600,
        )
        # The settings a settings module would hold (see report_server.webhook_settings); the demo's
        # receivers are on loopback, which the SSRF guard refuses unless told otherwise.
        settings.configure(
            REPORT_URL=self.config.report_url_template, QUEUE_NAME=self.config.webhook_queue,
            ALLOW_PRIVATE_DESTINATIONS=True, MESSAGE_KEYS=[new_key()],  # One process: a key of its own.
        )
        self.notes: queue.Queue[Note] = queue.Queue()
        self.broker = broker_from_url(broker_url) if broker_url else StubBroker()
        self.store = store_for(self.config)
        self.pipeline = build_pipeline(self.broker, self.store, render_queue=self.config.render_queue)
        self.broker.add_middleware(Progress(self.notes, self.store))
        self.receivers = {
            "ok": WebhookReceiver(token=secrets.token_urlsafe(12)),
            "flaky": WebhookReceiver(token=secrets.token_urlsafe(12), fail_first=FLAKY_FAILURES),
        }
        self.worker = dramatiq.Worker(self.broker, worker_threads=4)
        self.server = uvicorn.Server(uvicorn.Config(
            create_app(self.pipeline, api_keys=self.config.api_keys), log_level="warning", access_log=False,
        ))
        self._threads: list[threading.Thread] = []
        self.started = time.monotonic()
        self.once = False
        self._used_broker = False
        self.sample = self.unrenderable = ""
        #: (receiver, event, task_id) of every sample webhook still to arrive.
        self.expected: set[tuple[str, str, str]] = set()

    def webhook(self, name: str) -> dict[str, str]:
        receiver = self.receivers[name]
        return {"url": receiver.url + "/webhooks", "auth_header": str(receiver.token)}

    def start(self) -> None:
        self._check_broker()
        self._used_broker = True
        # As the dramatiq command does before it starts workers.
        self.broker.emit_after("process_boot")
        self.worker.start()
        for name, receiver in self.receivers.items():
            receiver.start()
            self._thread(self._forward, name, receiver)
        # The socket is already listening: requests sent before uvicorn is up wait in its backlog.
        self._thread(self.server.run, [self.listener])
        self._banner()
        self._submit_samples()

    def _thread(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _check_broker(self) -> None:
        if isinstance(self.broker, StubBroker):
            return
        try:
            client = getattr(self.broker, "client", None)
            client.ping() if client is not None else self.broker.connection  # type: ignore[attr-defined]
        except Exception as exc:
            raise BrokerUnreachable(
                "cannot reach the broker at %s: %s" % (_redacted(self.broker_url), str(exc) or type(exc).__name__)
            ) from exc

    def _forward(self, name: str, receiver: WebhookReceiver) -> None:
        for arrival in receiver.arrivals():
            what = "got %s for task %s (token %s) -> answered %d" % (
                arrival.event, short(arrival.task_id), arrival.token, arrival.status)
            if arrival.status >= 300:
                what += ", failing on purpose"
            self.notes.put(Note(arrival.at, "receiver %s" % name, what, arrival=arrival, receiver=name))

    def _banner(self) -> None:
        base = self.config.base_url
        broker = _redacted(self.broker_url) if self.broker_url else "embedded, in memory (see --broker)"
        self._print(
            "hybiscus-webhooks demo: a report server, a worker and two webhook receivers on this machine.",
            "  report server   %s  (API key %s)" % (base, self.api_key),
            "  broker          %s" % broker,
            "  receiver ok     %s  answers 204" % self.webhook("ok")["url"],
            "  receiver flaky  %s  fails its first %d calls, so its webhook comes after 30 s and 1 min"
            % (self.webhook("flaky")["url"], FLAKY_FAILURES),
            "",
            "Send your own report (its webhook goes to the ok receiver):",
            "  " + self.curl_line(),
            "",
        )

    def curl_line(self) -> str:
        body = json.dumps(samples.curl_report(self.webhook("ok")), separators=(",", ":"))
        return "curl -sS %s -H %s -H 'Content-Type: application/json' -d %s" % (
            shlex.quote(self.config.base_url + "/api/v1/build-report"), shlex.quote("X-API-KEY: " + self.api_key),
            shlex.quote(body))

    def _submit_samples(self) -> None:
        self.sample = self._submit(samples.quarterly_report([self.webhook("ok"), self.webhook("flaky")]))
        self.unrenderable = self._submit(samples.unrenderable_report([self.webhook("ok")]))
        self.expected = {
            ("ok", "report.completed", self.sample), ("flaky", "report.completed", self.sample),
            ("ok", "report.failed", self.unrenderable),
        }

    def _submit(self, report: dict[str, Any]) -> str:
        request = urllib.request.Request(
            self.config.base_url + "/api/v1/build-report", data=json.dumps(report).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-API-KEY": self.api_key},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.load(response)["task_id"])

    def follow(self, *, once: bool, timeout: float) -> int:
        self.once = once
        deadline = time.monotonic() + timeout
        while True:
            wait = deadline - time.monotonic() if once and self.expected else None
            if wait is not None and wait <= 0:
                missing = ", ".join("%s to %s" % (event, who) for who, event, _ in sorted(self.expected))
                self._print("Timed out after %d s; still waiting for: %s." % (timeout, missing))
                return 1
            try:
                note = self.notes.get(timeout=wait)
            except queue.Empty:
                continue
            self._print(note.line())
            self._after(note)
            if once and not self.expected:
                return 0

    def _after(self, note: Note) -> None:
        if note.what.startswith("rendered task") and note.what.endswith(short(self.sample)):
            url = "%s/api/v1/get-report?task_id=%s&api_key=%s" % (self.config.base_url, self.sample, self.api_key)
            self._print(Note(note.at, "server", "open the PDF: " + url).line())
        arrival = note.arrival
        if arrival is None or not 200 <= arrival.status < 300 or not self.expected:
            return
        self.expected.discard((str(note.receiver), str(arrival.event), str(arrival.task_id)))
        if not self.expected:
            self._print("", "All sample webhooks arrived, %d s after the start." % (time.monotonic() - self.started))
            if not self.once:
                self._print("Still serving; send your own reports with the curl line above. Ctrl-C stops.", "")

    def _print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out, flush=True)

    def stop(self) -> None:
        self.worker.stop(timeout=10_000)
        self.server.should_exit = True
        for receiver in self.receivers.values():
            receiver.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self.listener.close()
        if self._used_broker:
            _forget_queues(self.broker, self.config)
        self.pipeline.close()
        settings.reload()


def _forget_queues(broker: dramatiq.Broker, config: ServerConfig) -> None:
    """Drops this run's queues from a real broker: nobody will receive their webhooks any more."""
    names = [name for queue_name in (config.render_queue, config.webhook_queue)
             for name in (queue_name, queue_name + ".DQ", queue_name + ".XQ")]
    try:
        if hasattr(broker, "client"):  # Redis: queue keys, and this run's tasks
            keys = list(broker.client.scan_iter(match="*%s*" % config.namespace))
            if keys:
                broker.client.delete(*keys)
        elif hasattr(broker, "channel"):  # RabbitMQ
            for name in names:
                broker.channel.queue_delete(name)
    except Exception as exc:  # Cleaning up must not hide why the demo ended.
        print("warning: could not remove the demo's queues %s: %s" % (", ".join(names), exc), file=sys.stderr)


def _redacted(url: str | None) -> str:
    parts = urlsplit(url or "")
    if parts.password:
        return url.replace(":%s@" % parts.password, ":***@") if url else ""
    return url or ""
