"""``python -m bench.client URL METHOD BODY_FILE SECONDS CONNECTIONS``: the load generator when wrk is missing.

Keep-alive connections, one thread each; prints the count of 2xx answers and the seconds taken.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from urllib.parse import urlsplit


def main(url: str, method: str, body_file: str, seconds: float, connections: int) -> None:
    parts = urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    body = open(body_file, "rb").read() if method == "POST" else None  # noqa: SIM115
    deadline = time.monotonic() + seconds
    counts = [0] * connections

    def load(index: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port)
        while time.monotonic() < deadline:
            connection.request(method, target, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if 200 <= response.status < 300:
                counts[index] += 1
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=load, args=(index,)) for index in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("%d %.3f" % (sum(counts), time.monotonic() - started))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
