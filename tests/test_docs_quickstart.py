"""The quickstart page, run as written: its files, its shell commands, real uvicorn, a real worker, real Redis."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import dramatiq.broker
import pytest
import redis
import urllib3

from hybiscus_webhooks import settings
from hybiscus_webhooks.testing import make_stub_broker, queued_deliveries

from .conftest import require_service
from .docs_blocks import Project, commands, named_block, write_project

PAGE = "quickstart.rst"
REDIS_URL = "redis://127.0.0.1:6379/12"  # A database of its own, emptied before and after.
# uvicorn prints "Application startup complete" before it binds its socket, "Uvicorn running on" after.
BACKGROUND_READY = {"uvicorn": "Uvicorn running on", "dramatiq": "is ready for action"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Output:
    """Collects a process's output lines in a thread, so that a test can wait for one without blocking the process."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        self.process.wait()  # The output ended: let a waiter see that the process is gone.
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, *needles: str, timeout: float = 60) -> str:
        """The first line that contains every needle, once the process has printed it."""

        def found() -> str | None:
            return next((line for line in self.lines if all(needle in line for needle in needles)), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self.process.poll() is not None, timeout)
            line = found()
        assert line is not None, "%r printed no line with %r:\n%s" % (self.process.args, needles, "".join(self.lines))
        return line

    def close(self) -> None:
        self._thread.join()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    require_service("Redis", 6379)
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    yield write_project(PAGE, tmp_path)
    store.flushdb()
    store.close()


@pytest.fixture
def processes() -> Iterator[list[Output]]:
    started: list[Output] = []
    yield started
    for output in started:
        output.process.terminate()
    for output in started:
        try:
            output.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            output.process.kill()
            output.process.wait()
        output.close()


def post(url: str, body: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    answer = urllib3.PoolManager().request("POST", url, body=body.encode(), headers=headers or {})
    return answer.status, json.loads(answer.data)


def post_like_curl(argv: list[str]) -> tuple[int, Any]:
    url, headers, data = None, {}, None
    arguments = iter(argv)
    for argument in arguments:
        if argument == "-s":
            continue
        if argument == "-H":
            name, value = next(arguments).split(": ", 1)
            headers[name] = value
        elif argument == "-d":
            data = next(arguments)
        elif not argument.startswith("-") and url is None:
            url = argument
        else:
            raise AssertionError("the test does not know curl's %r" % argument)
    assert url is not None and data is not None
    return post(url, data, headers)


@pytest.mark.redis
def test_the_quickstart_runs_as_written(project: Project, processes: list[Output]) -> None:
    text = named_block(PAGE, "quickstart-run").code
    ports = {port: str(free_port()) for port in set(re.findall(r"(?:--port |127\.0\.0\.1:)(\d+)", text))}
    for documented, free in ports.items():
        text = text.replace("--port " + documented, "--port " + free).replace(":%s/" % documented, ":%s/" % free)

    env = {name: value for name, value in os.environ.items() if name != settings.ENVIRONMENT_VARIABLE}
    env.update(PYTHONPATH=str(project.root), REDIS_URL=REDIS_URL, PYTHONUNBUFFERED="1")

    def start(*argv: str) -> Output:
        process = subprocess.Popen([sys.executable, "-m", *argv], cwd=project.root, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        processes.append(Output(process))
        return processes[-1]

    receiver, submitted = None, []
    for argv in commands(text):
        program, background = argv[0], argv[-1] == "&"
        arguments = argv[1:-1] if background else argv[1:]
        if program == "export":
            name, value = arguments[0].split("=", 1)
            env[name] = value
        elif program == "hybiscus-webhooks" and not background:
            check = subprocess.run([sys.executable, "-m", "hybiscus_webhooks", *arguments], cwd=project.root, env=env,
                                   capture_output=True, text=True, check=False)
            assert check.returncode == 0, check.stderr
        elif program in BACKGROUND_READY and background:
            if program == "dramatiq":
                arguments += ["--processes", "1", "--threads", "2"]  # Kind to a shared machine.
            output = start(program, *arguments)
            output.wait_for(BACKGROUND_READY[program])
            if arguments[0] == "receiver:app":
                receiver = output
        elif program == "curl":
            status, answer = post_like_curl(arguments)
            assert status == 200, answer
            submitted.append((answer["task_id"], arguments))
        else:
            raise AssertionError("the test does not know how to run %r" % argv)

    assert receiver is not None and len(submitted) == 1
    [(task_id, curl)] = submitted

    # The FastAPI variant, on the same broker, with the same submission.
    fastapi_port = free_port()
    start("uvicorn", "myapp.web_fastapi:app", "--port", str(fastapi_port)).wait_for(BACKGROUND_READY["uvicorn"])
    fastapi_url = "http://127.0.0.1:%d/api/v1/build-report" % fastapi_port
    status, answer = post_like_curl([fastapi_url if argument.startswith("http") else argument for argument in curl])
    assert status == 200, answer
    fastapi_task_id = answer["task_id"]

    bad = json.dumps({"type": "Report", "components": [], "config": {"webhooks": [{"url": "ftp://x"}]}})
    for url in (fastapi_url, next(argument for argument in curl if argument.startswith("http"))):
        assert post(url, bad)[0] == 422

    for expected in (task_id, fastapi_task_id):
        line = receiver.wait_for("webhook msg_", expected)
        _, webhook_id, body = line.split(" ", 2)
        assert webhook_id.startswith("msg_")
        assert json.loads(body) == {"event": "report.completed", "task_id": expected,
                                    "url": "http://127.0.0.1:8000/api/v1/get-report?task_id=%s" % expected}


def test_the_render_job_sends_the_webhooks_itself(tmp_path: Path) -> None:
    render_job = write_project(PAGE, tmp_path).load("myapp/render_job.py")
    broker = make_stub_broker()
    webhooks = {"webhooks": [{"url": "https://customer.example/hook", "auth_header": "s3cret"}]}
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)
    try:
        render_job.render("task-1", {"components": [], "config": webhooks})
        with pytest.raises(ValueError, match="components"):
            render_job.render("task-2", {"components": None, "config": webhooks})
    finally:
        dramatiq.broker.global_broker = previous
    assert [(d.event, d.task_id) for d in queued_deliveries(broker)] == [
        ("report.completed", "task-1"), ("report.failed", "task-2")
    ]
