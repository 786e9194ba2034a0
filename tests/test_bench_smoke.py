"""Each benchmark of bench/ runs end to end with tiny counts: the code paths work. No timing is asserted."""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Any

import pytest

from .conftest import require_service

pytestmark = [pytest.mark.bench, pytest.mark.redis, pytest.mark.rabbitmq]

if importlib.util.find_spec("bench") is None:  # pragma: no cover - bench/ sits beside tests/ in a checkout
    pytest.skip("bench/ is not importable from here", allow_module_level=True)

from bench.__main__ import BENCHMARKS, parse, run  # noqa: E402

#: The rows each benchmark prints, each with a measured figure.
# hol: with SLOW_DESTINATION_SLOTS in the settings, one row with the limit off and one with its defaults,
# and the warm-up's.
# instructions: the delivery's, the middleware's and, with --quick on the first broker only, the whole
# worker's; none where valgrind is not installed (a note says so).
EXPECTED_ROWS = {"middleware": 9 + 1 + 3, "throughput": 6, "backlog": 2, "hol": 2 + 1, "enqueue": 6,
                 "instructions": 2 + 1 if shutil.which("valgrind") else 0}


def is_cpu_of_a_tiny_run(row: Any) -> bool:
    # /proc counts CPU time in ticks of 10 ms, which a run of a few dozen deliveries may not fill.
    return "CPU" in row.case and row.ours is not None and row.ours >= 0


@pytest.mark.parametrize("name", BENCHMARKS)
def test_the_benchmark_runs_with_tiny_counts(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    require_service("Redis", 6379)
    require_service("RabbitMQ", 5672)
    names, options = parse([name, "--quick", "--threads", "4"])
    results = run(names, options)
    assert len(results.rows) == EXPECTED_ROWS[name]
    for row in results.rows:
        assert (row.ours is not None and row.ours > 0) or is_cpu_of_a_tiny_run(row), row
        assert row.ratio is None or row.ratio > 0 or is_cpu_of_a_tiny_run(row), row
    assert "nproc" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["throughput", "enqueue"])
def test_the_production_switches_run(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    require_service("Redis", 6379)
    require_service("RabbitMQ", 5672)
    names, options = parse([name, "--quick", "--threads", "4", "--production"])
    assert (options.signing, options.records, options.sealed) == (True, True, True)
    results = run(names, options)
    assert len(results.rows) == EXPECTED_ROWS[name]
    assert all((row.ours is not None and row.ours > 0) or is_cpu_of_a_tiny_run(row) for row in results.rows)
    if name == "throughput":
        # The services each delivery keeps busy are read apart: the broker, the Redis of the records, nginx.
        services = {row.case.split(",")[0]: row.note for row in results.rows if "worker and services" in row.case}
        assert set(services) == {"redis", "rabbitmq"}
        assert "RabbitMQ" in services["rabbitmq"] and "receiver" in services["redis"], services
        # Redis is read when the run started a private redis-server (on PATH, as in CI), not a shared one.
        private = options.redis_pid is not None
        assert ("Redis" in services["rabbitmq"], "Redis" in services["redis"]) == (private, private), services


def test_throughput_by_name_sends_to_localhost(capsys: pytest.CaptureFixture[str]) -> None:
    require_service("Redis", 6379)
    names, options = parse(["throughput", "--quick", "--threads", "4", "--production", "--by-name",
                            "--brokers", "redis"])
    results = run(names, options)
    # Both actors delivered every webhook to the name (a run that loses one raises).
    assert len(results.rows) == 3 and all(row.ours and row.ours > 0 for row in results.rows if "CPU" not in row.case)
    assert "receiver addressed as localhost" in capsys.readouterr().out


def test_hol_alternates_its_runs_and_reports_each_round(capsys: pytest.CaptureFixture[str]) -> None:
    require_service("Redis", 6379)
    require_service("RabbitMQ", 5672)
    names, options = parse(["hol", "--quick", "--threads", "4", "--rounds", "2"])
    results = run(names, options)
    limited = [row for row in results.rows if "defaults" in row.case]
    assert len(limited) == 1
    # Two healthy runs and two with hanging endpoints, one pair per round (the second in the other order).
    assert "median of 2 rounds' ratios" in limited[0].note
    healthy, hanging = limited[0].note.split("(healthy ")[1].rstrip(" /s)").split(", hanging ")
    assert len(healthy.split("/")) == len(hanging.split("/")) == 2


def test_the_fresh_middleware_case_sends_webhooks_the_process_has_forgotten() -> None:
    # The row "3 webhooks new to the process" is only what it says while its bodies outnumber what the
    # library remembers: the schema's passed objects and the middleware's URL verdicts.
    from bench.middleware import fresh_case
    from hybiscus_webhooks import WebhooksMiddleware, schemas

    case = fresh_case()
    bodies = (case.body,) + case.others
    urls = [webhook["url"] for body in bodies for webhook in schemas.parse_report(body)["config"]["webhooks"]]
    assert len(set(urls)) == len(urls) == 3 * len(bodies)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    url_verdicts = WebhooksMiddleware(app).url_check.cache_info().maxsize
    assert url_verdicts is not None and len(urls) > url_verdicts and len(urls) > schemas.MAX_REMEMBERED_URLS
    assert len({len(body) for body in bodies}) == 1  # The same size as the 2 KB case, every time.


def test_a_pinned_worker_runs_on_its_cpu_alone() -> None:
    require_service("Redis", 6379)
    if not shutil.which("taskset"):
        pytest.skip("taskset is not installed")
    from bench.deliveries import Setup

    cpu = max(os.sched_getaffinity(0))
    _, options = parse(["throughput", "--quick", "--threads", "2", "--brokers", "redis",
                       "--redis-url", "redis://127.0.0.1:6379/0", "--pin-worker", str(cpu)])
    assert options.pin_worker == cpu and "pinned to CPU %d" % cpu in options.describe()
    with Setup("redis", options) as setup, setup.worker([setup.queue]) as worker:
        # The forked worker process, and every thread it starts, may run on that CPU only.
        pid = worker.worker_pid()
        assert os.sched_getaffinity(pid) == {cpu}


def test_pinning_to_a_cpu_this_process_may_not_use_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["throughput", "--pin-worker", str(max(os.sched_getaffinity(0)) + 1000)])
    assert "--pin-worker" in capsys.readouterr().err


def test_a_ratio_is_the_median_of_the_rounds_ratios_not_of_their_medians() -> None:
    from bench.common import median_ratio

    # Rounds' ratios 3, 1.1 and 4: their median is 3; the medians' ratio would be 11 / 10.
    assert median_ratio([1, 10, 10], [3, 11, 40]) == 3
    with pytest.raises(ValueError):
        median_ratio([1, 2], [1])  # A round without its pair is a mistake, not a shorter list.
