"""The README's quickstart, run as written: its files, real uvicorn, a real dramatiq worker, real Redis."""

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

import pytest
import redis
import urllib3

from hybiscus_webhooks.testing import Receiver

from .conftest import require_service
from .docs_blocks import commands, markdown_block
from .test_docs_quickstart import post_like_curl

README = Path(__file__).parent.parent / "README.md"
REDIS_URL = "redis://127.0.0.1:6379/9"  # A database of its own, emptied before and after.


def quickstart_files() -> dict[str, str]:
    """Every ```python block of the README whose first line names a file."""
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", README.read_text(), flags=re.S)
    return dict(blocks)


def test_the_quickstart_names_its_files() -> None:
    assert sorted(quickstart_files()) == ["myapp/broker.py", "myapp/web.py", "myapp/webhook_settings.py"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_line(process: subprocess.Popen[str], needle: str) -> threading.Thread:
    """Read the output until ``needle``, then keep draining it so the process never blocks on a full pipe."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if needle in line:
            drain = threading.Thread(target=process.stdout.read, daemon=True)
            drain.start()
            return drain
    raise AssertionError("%r never printed %r:\n%s" % (process.args, needle, "".join(lines)))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[dict[str, str]]:
    require_service("Redis", 6379)
    for name, code in quickstart_files().items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(code)
    (tmp_path / "myapp" / "__init__.py").write_text("")
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    env = {name: value for name, value in os.environ.items() if name != "HYBISCUS_WEBHOOKS_SETTINGS"}
    env.update(PYTHONPATH=str(tmp_path), REDIS_URL=REDIS_URL, PYTHONUNBUFFERED="1")
    yield env
    store.flushdb()
    store.close()


@pytest.mark.redis
def test_the_quickstart_delivers_a_webhook(project: dict[str, str]) -> None:
    port = free_port()
    started: list[subprocess.Popen[str]] = []
    drains: list[threading.Thread] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", *args], env=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started.append(process)
        return process

    try:
        with Receiver() as receiver:
            # The README's lines as written, with free ports instead of 8000 (the app) and 9000 (the receiver).
            ports = {"8000": str(port), "9000": receiver.url.rsplit(":", 1)[1]}
            task_id = None
            for argv in (commands(markdown_block("README.md", "readme-run").code)
                         + commands(markdown_block("README.md", "readme-curl").code)):
                argv = [re.sub(r"(?<=127\.0\.0\.1:)(8000|9000)\b", lambda found: ports[found[1]], argument)
                        for argument in argv]
                program, background = argv[0], argv[-1] == "&"
                arguments = argv[1:-1] if background else argv[1:]
                if program == "export":
                    name, value = arguments[0].split("=", 1)
                    project[name] = value
                elif program == "hybiscus-webhooks":
                    check = subprocess.run([sys.executable, "-m", "hybiscus_webhooks", *arguments], env=project,
                                           capture_output=True, text=True, check=False)
                    assert check.returncode == 0, check.stderr
                elif program == "uvicorn" and background:
                    assert arguments[-2:] == ["--port", "8000"]
                    web = start(program, *arguments[:-1], ports["8000"])
                    drains.append(wait_for_line(web, "Uvicorn running on"))
                elif program == "dramatiq" and background:
                    worker = start(program, *arguments, "--processes", "1", "--threads", "2")
                    drains.append(wait_for_line(worker, "is ready for action"))
                elif program == "curl":
                    status, answer = post_like_curl(arguments)
                    assert status == 200, answer
                    task_id = answer["task_id"]
                else:
                    raise AssertionError("the test does not know how to run %r" % argv)
            assert task_id is not None

            http = urllib3.PoolManager()
            rejected = http.request("POST", "http://127.0.0.1:%d/api/v1/build-report" % port,
                                    body=json.dumps({"config": {"webhooks": [{"url": "ftp://x"}]}}))
            assert rejected.status == 422

            [request] = receiver.wait_for(1, timeout=60)
            assert json.loads(request.body) == {
                "event": "report.completed", "task_id": task_id,
                "url": "http://127.0.0.1:8000/api/v1/get-report?task_id=%s" % task_id,
            }
            assert request.headers["authorization"] == "Bearer s3cret"
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for drain in drains:
            drain.join()
        for process in started:
            assert process.stdout is not None
            process.stdout.close()
