"""The command lines of docs/operations.rst, run as written: separate workers, then every hybiscus-webhooks line.

The quickstart's broker module on real Redis (a database of its own), a settings module that names
it (``BROKER_MODULE``, as the page says), and one delivery the SSRF guard refuses, so that every
command has something to show: its record, its dead letter. One change to the lines: ``send-test``
goes to a loopback receiver instead of customer.example.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from hybiscus_webhooks import install, records, report_completed, settings

from .conftest import require_service
from .docs_blocks import Project, commands, named_block, write_project
from .processes import Process, start_process  # noqa: F401 (a fixture)

REDIS_URL = "redis://127.0.0.1:6379/14"  # A database of its own, emptied before and after.
REPORT_URL = "https://api.example.com/api/v1/get-report?task_id={task_id}"
#: Webhooks may go to the receiver on 127.0.0.1, not to 127.0.0.2: there the guard refuses them.
SETTINGS = """REPORT_URL = %r
BROKER_MODULE = "myapp.broker"
ALLOWED_NETWORKS = ["127.0.0.1/32"]
""" % REPORT_URL
SETTINGS_MODULE = "myapp.webhook_settings"
TASK_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    require_service("Redis", 6379)
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    project = write_project("quickstart.rst", tmp_path)  # Its broker module, myapp/broker.py.
    (tmp_path / "myapp" / "webhook_settings.py").write_text(SETTINGS)
    yield project
    store.flushdb()
    store.close()


def environment(project: Project) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != settings.ENVIRONMENT_VARIABLE}
    env.update(PYTHONPATH=str(project.root), REDIS_URL=REDIS_URL)
    return env


def refused_delivery() -> None:
    """A report.completed webhook to 127.0.0.2, enqueued as the web app would; a worker must take it."""
    from dramatiq.brokers.redis import RedisBroker

    settings.configure(REPORT_URL=REPORT_URL, ALLOWED_NETWORKS=["127.0.0.1/32"])
    broker = RedisBroker(url=REDIS_URL)
    try:
        install(broker)
        report = {"config": {"webhooks": [{"url": "http://127.0.0.2:9/hooks/reports", "auth_header": "s3cret"}]}}
        report_completed(TASK_ID, report, broker=broker)
        records.bind(broker)
        deadline = time.monotonic() + 60
        while [record.state for record in records.deliveries(TASK_ID)] != ["refused"]:
            assert time.monotonic() < deadline, records.deliveries(TASK_ID)
            time.sleep(0.1)  # The worker is another process: its record is all there is to watch.
    finally:
        records.use(None)
        broker.close()


@pytest.mark.redis
def test_the_separate_workers_and_every_command_line(
    project: Project, start_process: Callable[..., Process]  # noqa: F811 (the fixture imported above)
) -> None:
    env = environment(project)
    workers = commands(named_block("operations.rst", "operations-separate-workers").code)
    assert [argv[:4] for argv in workers] == [["dramatiq", "myapp.broker", "--queues", "render"],
                                             ["dramatiq", "myapp.broker", "--queues", "hybiscus_webhooks"]]
    for argv in workers:
        # One process with two threads, kind to a shared machine (the second line's --threads comes last).
        argv = [sys.executable, "-m", *argv[:4], "--processes", "1", "--threads", "2", *argv[4:]]
        worker = start_process(argv[4], argv, env={**env, settings.ENVIRONMENT_VARIABLE: SETTINGS_MODULE})
        worker.wait_for("is ready for action", timeout=60)
    refused_delivery()  # Taken by the second worker: the first one listens on the render queue only.

    from hybiscus_webhooks.testing import Receiver

    with Receiver() as receiver:
        results = []
        for argv in commands(named_block("operations.rst", "operations-cli").code):
            if argv[0] == "export":
                name, value = argv[1].split("=", 1)
                env[name] = value
                continue
            assert argv[0] == "hybiscus-webhooks", argv
            if argv[1] == "send-test":
                assert argv[2] == "https://customer.example/hooks/reports"
                argv[2] = receiver.url + "/hooks/reports"
            script = Path(sys.executable).parent / argv[0]  # The console script of the environment under test.
            results.append(subprocess.run([str(script), *argv[1:]], env=env, cwd=project.root, input="s3cret\n",
                                          capture_output=True, text=True, timeout=120, check=False))
        [request] = receiver.wait_for(1)

    check, task, failed, redeliver, send_test = results
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Settings from settings module 'myapp.webhook_settings'" in check.stdout
    assert "ok: the RedisBroker answers." in check.stdout

    assert task.returncode == 0, task.stderr
    assert task.stdout.startswith("report.completed of task %s to http://127.0.0.2:9/hooks/reports\n" % TASK_ID)
    assert ": refused (1 attempt" in task.stdout

    assert failed.returncode == 0, failed.stderr
    [record] = json.loads(failed.stdout)
    assert (record["task_id"], record["state"]) == (TASK_ID, "refused")

    assert redeliver.returncode == 0, redeliver.stderr
    assert redeliver.stdout.startswith("would redeliver report.completed of task %s to http://127.0.0.2:9/hooks/reports"
                                       % TASK_ID)

    assert send_test.returncode == 0, send_test.stderr
    assert "HTTP 204" in send_test.stdout
    assert request.path == "/hooks/reports" and request.headers["authorization"] == "Bearer s3cret"
    assert "s3cret" not in "".join(result.stdout + result.stderr for result in results)


@pytest.mark.redis
def test_the_pinned_workers_run_each_on_its_cpu(
    project: Project, start_process: Callable[..., Process]  # noqa: F811 (the fixture imported above)
) -> None:
    workers = commands(named_block("operations.rst", "operations-pinned-workers").code)
    assert [argv[:3] for argv in workers] == [["taskset", "-c", "0"], ["taskset", "-c", "1"]]
    if not {0, 1} <= os.sched_getaffinity(0) or not shutil.which("taskset"):
        pytest.skip("the page's lines need CPUs 0 and 1, and taskset")
    env = {**environment(project), settings.ENVIRONMENT_VARIABLE: SETTINGS_MODULE}
    started = []
    for argv in workers:
        assert argv[3:8] == ["dramatiq", "myapp.broker", "--queues", "hybiscus_webhooks", "--processes"], argv
        worker = start_process("worker on CPU %s" % argv[2], [*argv[:3], sys.executable, "-m", *argv[3:]], env=env)
        started.append((int(argv[2]), worker))
    for cpu, worker in started:
        worker.wait_for("is ready for action", timeout=60)
        # taskset runs the command in its own process; the command forks its worker process there. (Read
        # here as bench.common.children reads it: the tests do not depend on bench/.)
        pid = worker.popen.pid
        with open("/proc/%d/task/%d/children" % (pid, pid)) as found:
            forked = [int(child) for child in found.read().split()]
        assert forked, worker.tail()
        assert [os.sched_getaffinity(each) for each in [pid, *forked]] == [{cpu}] * (1 + len(forked))
