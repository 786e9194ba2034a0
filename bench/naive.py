"""The baseline of the delivery benchmarks: POST the same body with urllib3, nothing else."""

from __future__ import annotations

from collections.abc import Callable

import urllib3

from hybiscus_webhooks.sender import USER_AGENT


def naive_post(connect_timeout: float, read_timeout: float) -> Callable[[str, str, str | None], None]:
    """A function that POSTs ``body`` to ``url`` through one shared pool manager, and raises unless 2xx."""
    pool = urllib3.PoolManager(maxsize=16, block=False)
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)

    def post(url: str, body: str, auth_header: str | None) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if auth_header:
            headers["Authorization"] = "Bearer " + auth_header
        response = pool.request("POST", url, body=body.encode(), headers=headers, redirect=False, retries=False,
                                timeout=timeout)
        if not 200 <= response.status < 300:
            raise RuntimeError("HTTP %d" % response.status)

    return post
