"""1. What WebhooksMiddleware costs per request: in-process ASGI calls, then through uvicorn with wrk."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

from . import apps, reports
from .common import Results, Row, cpu_seconds, free_port, median, median_ratio, wait_until
from .options import Options
from .services import ROOT, _listening, _stop

NAME = "middleware"


@dataclass(frozen=True)
class Case:
    label: str
    method: str
    path: str
    body: bytes
    target: str
    #: More bodies, sent in turn after ``body``: each call's webhooks new to the process.
    others: tuple[bytes, ...] = ()


def cases(sizes: tuple[int, ...] = (2_000, 200_000)) -> list[Case]:
    found = [
        Case("POST build-report %s, 3 webhooks" % _size(size), "POST", apps.SUBMIT,
             reports.body(size, webhooks=reports.hook_urls(3)), "<= 1.03x")
        for size in sizes
    ]
    found.insert(1, Case("POST build-report %s, no webhooks" % _size(sizes[0]), "POST", apps.SUBMIT,
                         reports.body(sizes[0]), "<= 1.03x"))
    found.append(Case("GET get-task-status", "GET", apps.STATUS, b"", "<= 1.01x"))
    return found


def fresh_case(size: int = 2_000, count: int = 8192) -> Case:
    """A submission whose 3 webhooks the process has not seen: the library remembers the URLs
    its schema passed (4096 of them, and the middleware 1024 URL verdicts), so ``count`` bodies with 3 URLs of their own
    are sent in turn and none is met again before it has been forgotten."""
    marker = "0" * 6
    template = reports.body(size, webhooks=["https://hooks%d-%s.customer.example/reports" % (index, marker)
                                            for index in range(3)])
    bodies = tuple(template.replace(marker.encode(), b"%06d" % number) for number in range(count))
    return Case("POST build-report %s, 3 webhooks new to the process" % _size(size), "POST", apps.SUBMIT,
                bodies[0], "<= 1.03x", others=bodies[1:])


def _size(size: int) -> str:
    return "%d KB" % (size // 1000)


def main(results: Results, options: Options) -> None:
    run(results, requests=options.requests, rounds=options.rounds, duration=options.duration,
        warm_up=not options.quick, http_cases=2 if options.quick else None, fresh_bodies=64 if options.quick else 8192)


def run(results: Results, *, requests: int = 2000, rounds: int = 5, duration: float = 5.0,
        connections: int = 16, http: bool = True, warm_up: bool = True, http_cases: int | None = None,
        fresh_bodies: int = 8192) -> None:
    built = {variant: apps.make_app(variant) for variant in apps.VARIANTS}
    measured = cases()
    measured.insert(1, fresh_case(count=fresh_bodies))
    for case in measured:
        # Many short rounds, the variants back to back in each: all see the same machine.
        # 200 KB bodies take ~50x longer to parse: fewer calls keep each round short.
        calls = max(2, requests // 200) if len(case.body) > 50_000 else max(10, requests // 10)
        per_call = in_process(built, case, calls=calls, rounds=10 * rounds)
        _compare(results, "in-process", case, per_call, unit="us", scale=1e6)
    _pass_through(results, median(in_process(built, cases()[-1], calls=max(10, requests // 10), rounds=10)["bare"]))
    results.note("in-process: CPU seconds per call; %d rounds, the variants back to back in each; figures are "
                 "medians, ratios the median of each round's ratio" % (10 * rounds))
    if not http:
        return
    with Servers() as servers:
        results.note("HTTP: uvicorn %s, one process serving every variant, load from %s, %d connections, "
                     "%.0f s x %d rounds; figures are the server's CPU seconds per request"
                     % (servers.loop_note, load_generator(), connections, duration, rounds))
        chosen = cases()
        if http_cases is not None:  # the first submission and the GET: enough to prove the code path
            chosen = [chosen[0], chosen[-1]]
        for case in chosen:
            per_request = servers.measure(case, duration=duration, rounds=rounds, connections=connections,
                                          warm_up=warm_up)
            _compare(results, "uvicorn", case, per_request, unit="us", scale=1e6)
            results.note("uvicorn %s: requests/s (medians) %s" % (case.label, ", ".join(
                "%s %.0f" % (variant, rate) for variant, rate in servers.rates.items())))


def _compare(results: Results, where: str, case: Case, per_call: dict[str, list[float]], *, unit: str,
             scale: float) -> None:
    bare = median(per_call["bare"])

    def ratio(variant: str) -> float:
        return median_ratio(per_call["bare"], per_call[variant])

    results.add(Row(NAME, "%s %s" % (where, case.label), unit, bare * scale, median(per_call["middleware"]) * scale,
                    ratio("middleware"), case.target, note="route uses request.state.report"
                    if case.method == "POST" else ""))
    if case.method == "POST":
        results.add(Row(NAME, "%s %s, app parses again" % (where, case.label), unit, bare * scale,
                        median(per_call["naive"]) * scale, ratio("naive"), "", note="request.json() again"))


# In process ---------------------------------------------------------------------------------------


def in_process(built: dict[str, ASGIApp], case: Case, *, calls: int, rounds: int) -> dict[str, list[float]]:
    """CPU seconds per call of each variant, one figure per round; the variants back to back in each round.

    CPU time of this process: time the machine gives to other work is left out.
    """
    timings: dict[str, list[float]] = {variant: [] for variant in built}

    async def measure() -> None:
        for variant, app in built.items():  # warm up, and prove each variant answers 200
            status = await _call(app, case)
            if status != 200:
                raise RuntimeError("%s answered %d to %s" % (variant, status, case.label))
        bodies = itertools.cycle((case.body,) + case.others)
        for round_number in range(rounds):
            order = list(built)
            order = order[round_number % len(order):] + order[:round_number % len(order)]
            for variant in order:
                app = built[variant]
                started = time.process_time()
                for _ in range(calls):
                    await _call(app, case, next(bodies))
                timings[variant].append((time.process_time() - started) / calls)

    asyncio.run(measure())
    return timings


def _pass_through(results: Results, route: float) -> None:
    """What the middleware adds to a request it lets through: timed around an app that does nothing.

    Far below the noise of a whole request on a busy machine, so measured on its own, and set
    against the bare GET route's time for the ratio.
    """
    from hybiscus_webhooks import WebhooksMiddleware

    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        pass

    wrapped = WebhooksMiddleware(nothing)
    scope = {"type": "http", "method": "GET", "path": apps.STATUS, "headers": []}
    calls = 20_000

    async def timed(app: Any) -> float:
        started = time.process_time()
        for _ in range(calls):
            await app(scope, None, None)
        return (time.process_time() - started) / calls

    async def measure() -> float:
        return min([await timed(wrapped) - await timed(nothing) for _ in range(7)])

    added = max(asyncio.run(measure()), 0.0)
    results.add(Row(NAME, "in-process GET: what the middleware adds", "us", route * 1e6, (route + added) * 1e6,
                    (route + added) / route, "<= 1.01x", note="+%.2f us per request" % (added * 1e6)))


async def _call(app: ASGIApp, case: Case, body: bytes | None = None) -> int:
    body = case.body if body is None else body
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    if case.method == "POST":
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": case.method,
        "scheme": "http", "path": case.path, "raw_path": case.path.encode(), "query_string": b"task_id=t1",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


# Through uvicorn ----------------------------------------------------------------------------------


def load_generator() -> str:
    return "wrk" if shutil.which("wrk") else "a Python client in another process (wrk is not installed)"


class Servers:
    """One uvicorn process serving every variant under its own path prefix (``apps.every_variant``)."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hw-bench-http-"))
        self.port = free_port()
        self.variants = apps.VARIANTS
        #: Requests per second of each variant in the last ``measure``, medians of its rounds.
        self.rates: dict[str, float] = {}
        loop_args: list[str] = []
        try:
            import httptools  # noqa: F401
            import uvloop  # noqa: F401

            loop_args = ["--loop", "uvloop", "--http", "httptools"]
            self.loop_note = "with uvloop and httptools"
        except ImportError:
            self.loop_note = "with asyncio and h11 (uvloop/httptools not installed)"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bench.apps:every_variant", "--host", "127.0.0.1",
             "--port", str(self.port), "--lifespan", "off", "--log-level", "warning", "--no-access-log", *loop_args],
            cwd=ROOT, start_new_session=True,
        )
        wait_until(lambda: _listening([self.port]), timeout=30, what="uvicorn")

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _stop(self.process, 15)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def measure(self, case: Case, *, duration: float, rounds: int, connections: int,
                warm_up: bool = True) -> dict[str, list[float]]:
        """CPU seconds of the server per request of each variant, one figure per round.

        The server's own CPU time, not requests per second: wrk, the server and everything else on
        the machine share its cores, and what they take from the server leaves this figure alone.
        """
        body_file = self.tmp / "body.json"
        body_file.write_bytes(case.body)
        cpu: dict[str, list[float]] = {variant: [] for variant in self.variants}
        rates: dict[str, list[float]] = {variant: [] for variant in self.variants}
        for variant in self.variants if warm_up else ():
            _load(self._url(variant, case), case, body_file, duration=1.0, connections=connections, tmp=self.tmp)
        for round_number in range(rounds):
            order = list(self.variants)
            order = order[round_number % len(order):] + order[:round_number % len(order)]
            for variant in order:
                pid = self.process.pid
                before = cpu_seconds(pid)
                count, seconds = _load(self._url(variant, case), case, body_file, duration=duration,
                                       connections=connections, tmp=self.tmp)
                cpu[variant].append((cpu_seconds(pid) - before) / count)
                rates[variant].append(count / seconds)
        self.rates = {variant: median(values) for variant, values in rates.items()}
        return cpu

    def _url(self, variant: str, case: Case) -> str:
        query = "?task_id=t1" if case.method == "GET" else ""
        return "http://127.0.0.1:%d/%s%s%s" % (self.port, variant, case.path, query)


def _load(url: str, case: Case, body_file: Path, *, duration: float, connections: int,
          tmp: Path) -> tuple[int, float]:
    """Requests that ``url`` answered (all with 2xx) over about ``duration`` seconds, and the seconds."""
    if not shutil.which("wrk"):
        return _python_load(url, case, body_file, duration=duration, connections=connections)
    script = tmp / "request.lua"
    script.write_text(
        'wrk.method = "%s"\nwrk.headers["Content-Type"] = "application/json"\n' % case.method
        + ('local f = io.open("%s", "rb")\nwrk.body = f:read("*all")\nf:close()\n' % body_file
           if case.method == "POST" else "")
    )
    done = subprocess.run(
        # A long timeout: a 200 KB body on a busy machine can take seconds, and a timeout is an error here.
        ["wrk", "-t1", "-c%d" % connections, "-d%ds" % max(1, round(duration)), "--timeout", "60s", "-s", str(script),
         url],
        capture_output=True, text=True, timeout=duration + 120, check=True,
    )
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError("wrk saw errors from %s:\n%s" % (url, done.stdout))
    found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", done.stdout)
    if not found:
        raise RuntimeError("could not read wrk's output:\n%s" % done.stdout)
    seconds = float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
    return int(found.group(1)), seconds


def _python_load(url: str, case: Case, body_file: Path, *, duration: float, connections: int) -> tuple[int, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.client", url, case.method, str(body_file), str(duration), str(connections)],
        cwd=ROOT, capture_output=True, text=True, timeout=duration + 60, check=True,
    )
    count, seconds = done.stdout.split()
    return int(count), float(seconds)
