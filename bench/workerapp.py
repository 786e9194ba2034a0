"""The module the benchmark's ``dramatiq`` worker imports: our delivery actor and the naive one, on one broker.

Configured by the environment variable ``BENCH_WORKER`` (JSON): the broker, the queue of each actor,
the library's settings. Not part of the library, so it may read the environment at import.
"""

from __future__ import annotations

import json
import os
from typing import Any

import dramatiq

from hybiscus_webhooks import install, records, settings

from .brokers import make_broker
from .naive import naive_post as make_naive_post

CONFIG: dict[str, Any] = json.loads(os.environ["BENCH_WORKER"])

# The settings of the benchmark's process (ALLOW_PRIVATE_DESTINATIONS included: receivers are on loopback).
settings.configure(**CONFIG["settings"])
# Under callgrind the worker runs some 50 times slower: the records writer waits as much longer for a
# batch, so that its batches hold as many writes as at speed (the instructions benchmark's worker rows).
records.LINGER_SECONDS = CONFIG.get("records_linger", records.LINGER_SECONDS)
broker = make_broker(CONFIG)
dramatiq.set_broker(broker)
deliver = install(broker)

_values = settings.get()
_post = make_naive_post(_values.CONNECT_TIMEOUT, _values.READ_TIMEOUT)


@dramatiq.actor(actor_name="bench_naive_post", queue_name=CONFIG["naive_queue"], max_retries=0, broker=broker)
def naive_post(url: str, body: str, auth_header: str | None) -> None:
    """The baseline: POST the same body with urllib3, nothing else."""
    _post(url, body, auth_header)
