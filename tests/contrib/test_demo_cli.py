"""How `hybiscus-webhooks demo` starts and refuses; the whole run is in tests/e2e/test_demo.py."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from hybiscus_webhooks.cli import main


def test_without_the_demo_extra_it_says_which_extra_to_install() -> None:
    # A fresh interpreter where fpdf cannot be imported, as after a plain `pip install hybiscus-webhooks`.
    code = "import sys; sys.modules['fpdf'] = None; from hybiscus_webhooks.cli import main; sys.exit(main(['demo']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "the demo needs the 'demo' extra (fpdf is not installed)" in done.stderr
    assert "pip install 'hybiscus-webhooks[demo]'" in done.stderr


def test_a_taken_port_is_an_error_that_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        assert main(["demo", "--port", str(taken.getsockname()[1])]) == 2
    assert "pass --port with a free port, or 0 for any" in capsys.readouterr().err


def test_a_broker_url_of_another_kind_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--port", "0", "--broker", "http://127.0.0.1:6379"]) == 2
    assert "must start with redis:// or amqp://" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:hidden@127.0.0.1:1/%2F"])
def test_a_broker_that_does_not_answer_is_an_error_without_its_password(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--port", "0", "--broker", url]) == 2
    error = capsys.readouterr().err
    assert "error: cannot reach the broker at %s" % url.replace("hidden", "***") in error
    assert "hidden" not in error
