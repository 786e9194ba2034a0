"""The module the benchmark's ``dramatiq`` worker imports: our delivery actor and the naive one, on one broker.

Configured by the environment variable ``BENCH_WORKER`` (JSON): the broker, the queue of each actor,
the library's settings. Not part of the library, so it may read the environment at import.
"""

from __future__ import annotations

import json
import os
from typing import Any

import dramatiq
import urllib3

from hybiscus_webhooks import install, settings
from hybiscus_webhooks.sender import USER_AGENT

from .brokers import make_broker

CONFIG: dict[str, Any] = json.loads(os.environ["BENCH_WORKER"])

# The settings of the benchmark's process (ALLOW_PRIVATE_DESTINATIONS included: receivers are on loopback).
settings.configure(**CONFIG["settings"])
broker = make_broker(CONFIG)
dramatiq.set_broker(broker)
deliver = install(broker)

_values = settings.get()
_pool = urllib3.PoolManager(maxsize=16, block=False)
_timeout = urllib3.Timeout(connect=_values.CONNECT_TIMEOUT, read=_values.READ_TIMEOUT)


@dramatiq.actor(actor_name="bench_naive_post", queue_name=CONFIG["naive_queue"], max_retries=0, broker=broker)
def naive_post(url: str, body: str, auth_header: str | None) -> None:
    """The baseline: POST the same body with urllib3, nothing else."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if auth_header:
        headers["Authorization"] = "Bearer " + auth_header
    response = _pool.request("POST", url, body=body.encode(), headers=headers, redirect=False, retries=False,
                             timeout=_timeout)
    if not 200 <= response.status < 300:
        raise RuntimeError("HTTP %d" % response.status)
