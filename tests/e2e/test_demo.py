"""`hybiscus-webhooks demo --once`, as README tells users to run it: about 1.5 minutes on the real retry schedule."""

from __future__ import annotations

import io
import json
import re
import shlex
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pypdf
import urllib3

from ..processes import Process

_TIME = r"(\d\d:\d\d:\d\d)"


def seconds_between(start: str, end: str) -> float:
    gap = datetime.strptime(end, "%H:%M:%S") - datetime.strptime(start, "%H:%M:%S")
    return (gap + timedelta(days=1)).total_seconds() % 86400  # across midnight too


def test_the_demo_shows_every_step_and_ends_once_the_sample_webhooks_arrived(
    start_process: Callable[..., Process],
) -> None:
    command = Path(sys.executable).with_name("hybiscus-webhooks")
    demo = start_process("demo", [str(command), "demo", "--once", "--port", "0"])

    # While it runs: the printed URL opens the PDF, and the printed curl line is a working request.
    [opened] = demo.wait_for(r"open the PDF: ", timeout=60)
    http = urllib3.PoolManager(retries=False, timeout=10)
    pdf = http.request("GET", opened.split("open the PDF: ")[1])
    assert pdf.status == 200 and "Quarterly sales" in pypdf.PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    [curl] = demo.wait_for(r"^  curl ")
    arguments = shlex.split(curl)
    headers = dict(arguments[i + 1].split(": ", 1) for i, word in enumerate(arguments) if word == "-H")
    body = arguments[arguments.index("-d") + 1]
    answer = http.request("POST", arguments[2], body=body.encode(), headers=headers)
    assert answer.status == 200 and json.loads(answer.data)["status"] == "QUEUED"
    mine = json.loads(answer.data)["task_id"][:8]

    assert demo.wait(timeout=300) == 0, demo.tail()
    assert demo.matching(r"server +queued task \w{8}\.\.\. 'Quarterly sales' with 2 webhooks")
    assert demo.matching(r"worker +rendering task ") and demo.matching(r"worker +rendered task ")
    assert demo.matching(r"worker +render of task .* failed: .*unknown component type 'Hologram'")
    assert demo.matching(r"receiver ok +got report\.failed for task .* -> answered 204")
    assert demo.matching(r"receiver ok +got report\.completed for task %s\.\.\. .* -> answered 204" % mine)
    assert demo.matching(r"All sample webhooks arrived")

    # The flaky receiver's webhook: failed at +0 and +30 s, delivered at +90 s, each at the announced time.
    announcement = _TIME + r" .*failed attempt (\d) of report\.completed.*HTTP 503; next attempt at " + _TIME
    failures = [re.search(announcement, line) for line in demo.matching(r"failed attempt")]
    assert [match.group(2) for match in failures if match] == ["1", "2"]
    gaps = [seconds_between(match.group(1), match.group(3)) for match in failures if match]
    assert 29 <= gaps[0] <= 31 and 59 <= gaps[1] <= 61, gaps
    flaky = [re.match(_TIME, line).group(1) for line in demo.matching(r"receiver flaky +got report\.completed")]  # type: ignore[union-attr]
    assert len(flaky) == 3
    announced = [match.group(3) for match in failures if match]
    for arrived, expected in zip(flaky[1:], announced):
        assert seconds_between(expected, arrived) <= 2, (expected, arrived)
    assert demo.matching(r"receiver flaky +got report\.completed .* -> answered 204")
