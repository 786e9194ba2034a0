"""``python -m bench.receiver LOG [--delay SECONDS] PORT ...``: the fallback receiver, 204 to everything.

One log line a hit. ``--delay`` answers each request that long after it arrived (a receiver far away).
A PORT of 0 takes any free port; once all are listening, their numbers go to ``LOG.ports``, one a line.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(log_path: str, ports: list[int], delay: float = 0.0) -> None:
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if delay:
                time.sleep(delay)
            self.send_response(204)
            self.end_headers()
            with lock:
                log.write("%.3f %d 204\n" % (time.time(), self.server.server_address[1]))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", port), Handler) for port in ports]
    with open(log_path + ".ports.tmp", "w") as listening:
        listening.writelines("%d\n" % server.server_address[1] for server in servers)
    os.replace(log_path + ".ports.tmp", log_path + ".ports")
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    for server in servers:
        server.shutdown()
    log.close()


if __name__ == "__main__":
    arguments = sys.argv[2:]
    pause = 0.0
    if arguments[:1] == ["--delay"]:
        pause, arguments = float(arguments[1]), arguments[2:]
    serve(sys.argv[1], [int(port) for port in arguments], pause)
