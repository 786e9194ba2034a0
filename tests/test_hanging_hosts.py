"""A real `dramatiq` worker process that starts among hosts that hang keeps delivering to the hosts that answer.

With 3 threads and 3 hanging hosts, none marked slow yet (the first attempt to each is still waiting for
its answer), the worker gives two threads to the first two and keeps the third for the receiver that
has answered: its deliveries arrive long before READ_TIMEOUT (15 s) frees anyone, and the third hanging
host gets no attempt meanwhile. On Redis and on RabbitMQ.
"""

from __future__ import annotations

from pathlib import Path

from hybiscus_webhooks import report_completed, settings

from .e2e.processes import DramatiqCommand
from .e2e.slow_receiver import SlowReceiver
from .hostile import Listener, hang
from .test_crashes import Setup, setup  # noqa: F401 - the fixture: a broker, a queue and a worker's environment

HEALTHY = 20


def _send(on: Setup, task_id: str, url: str) -> None:
    report_completed(task_id, {"config": {"webhooks": [{"url": url}]}}, broker=on.broker)


def test_a_worker_starting_among_hanging_hosts_keeps_a_thread_for_the_hosts_that_answer(
    setup: Setup, tmp_path: Path  # noqa: F811 - the fixture imported above
) -> None:
    read_timeout = settings.get().READ_TIMEOUT  # The worker's too: tests.e2e.worker_settings leaves it alone.
    command = None
    try:
        with Listener(hang) as first, Listener(hang) as second, Listener(hang) as third, \
                SlowReceiver(delay=0.0) as healthy:
            command = DramatiqCommand(setup.env, tmp_path, threads=3)
            command.worker_pid()
            _send(setup, "task-known", healthy.url + "/hook/known")
            healthy.wait_until(lambda arrivals: len(arrivals) == 1, 60, "the receiver's first delivery")
            for number, listener in enumerate([first, second]):
                _send(setup, "task-hangs-%d" % number, listener.url())
                listener.wait_for_requests(1)
            _send(setup, "task-hangs-2", third.url())
            for number in range(HEALTHY):
                _send(setup, "task-%d" % number, healthy.url + "/hook/%d" % number)
            arrivals = healthy.wait_until(lambda arrivals: len(arrivals) == 1 + HEALTHY, 60, "the healthy deliveries")
            # All while the first two hanging attempts still hold their threads, and nobody tried the third.
            assert max(arrival.at for arrival in arrivals) < second.requested_at[0] + read_timeout
            assert third.requested_at == []
    finally:
        if command is not None:
            command.stop()  # After the hanging hosts closed: their attempts end at once.
