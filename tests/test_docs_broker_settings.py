"""The broker settings and commands of docs/brokers.rst and docs/operations.rst, run as written on private servers.

A private RabbitMQ node reads the page's rabbitmq.conf lines, and rabbitmqctl reads the setting back;
the page's rabbitmqctl and ``hybiscus-webhooks check`` lines run against that node. A private
redis-server reads the redis.conf lines, and a restart without a snapshot shows what they keep.
The shared servers are never touched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from hybiscus_webhooks import settings
from hybiscus_webhooks.broker_checks import check_rabbitmq_node, read_consumer_timeout

from .conftest import IN_CI, REPORT_URL, unique
from .docs_blocks import commands, named_block
from .e2e.rabbitmq_node import PrivateRabbitmqNode, start_private_node
from .e2e.redis_server import PrivateRedis, RedisUnavailable

pytestmark = pytest.mark.slow


def config_lines(text: str) -> dict[str, str]:
    """``key = value`` (rabbitmq.conf) or ``key value`` (redis.conf) lines, comments left out."""
    found = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = re.split(r"\s*=\s*|\s+", line.strip(), maxsplit=1)
            found[key] = value
    return found


def on_node(node: PrivateRabbitmqNode, argv: list[str]) -> list[str]:
    """A documented rabbitmqctl line for the private node: its script, and its name after the program's."""
    assert argv[0] == "rabbitmqctl", argv
    return [node.ctl_path, "-n", node.name, *argv[1:]]


# --- RabbitMQ ---------------------------------------------------------------------------------------

CONF = named_block("brokers.rst", "brokers-consumer-timeout-conf").code


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitmqNode]:
    started = start_private_node(tmp_path_factory.mktemp("rabbitmq"), config=CONF)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def operator(node: PrivateRabbitmqNode, monkeypatch: pytest.MonkeyPatch) -> PrivateRabbitmqNode:
    """This process as an operator on the broker's host: the node's Erlang cookie in HOME, rabbitmqctl on PATH."""
    monkeypatch.setenv("HOME", str(node.base))
    monkeypatch.setenv("PATH", os.path.dirname(node.ctl_path) + os.pathsep + os.environ.get("PATH", ""))
    return node


@pytest.mark.rabbitmq
def test_the_rabbitmq_conf_lines_set_the_consumer_timeout(operator: PrivateRabbitmqNode) -> None:
    documented = int(config_lines(CONF)["consumer_timeout"])
    assert documented == 2 * 60 * 60 * 1000  # "2 hours, in milliseconds"
    assert read_consumer_timeout(operator.name) == documented
    # Enough to hold the 64-minute retry whole, with the check's margin.
    assert check_rabbitmq_node(operator.name, None) is None


@pytest.mark.rabbitmq
def test_the_check_line_reads_the_node(operator: PrivateRabbitmqNode, tmp_path: Path) -> None:
    [argv] = commands(named_block("brokers.rst", "brokers-check-node").code)
    assert argv[:3] == ["hybiscus-webhooks", "check", "--rabbitmq-node"] and len(argv) == 4
    argv[3] = operator.name
    (tmp_path / "node_broker.py").write_text(
        "from dramatiq.brokers.rabbitmq import RabbitmqBroker\n\nbroker = RabbitmqBroker(url=%r)\n" % operator.url)
    (tmp_path / "node_settings.py").write_text("REPORT_URL = %r\nBROKER_MODULE = 'node_broker:broker'\n" % REPORT_URL)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), settings.ENVIRONMENT_VARIABLE: "node_settings"}
    script = Path(sys.executable).parent / argv[0]  # The console script of the environment under test.
    result = subprocess.run([str(script), *argv[1:]], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: RabbitMQ's consumer_timeout leaves room for every retry hold." in result.stdout

    # The same line against a node whose timeout is too short: exit 1 and what to change.
    operator.ctl("eval", "application:set_env(rabbit, consumer_timeout, 600000).")
    try:
        result = subprocess.run([str(script), *argv[1:]], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=120, check=False)
    finally:
        restore = config_lines(CONF)["consumer_timeout"]
        operator.ctl("eval", "application:set_env(rabbit, consumer_timeout, %s)." % restore)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "warning: RabbitMQ's consumer_timeout is 10 min" in result.stderr
    assert "Set RETRY_HOLD_LIMIT to at most 9 min" in result.stderr


@pytest.mark.rabbitmq
def test_the_rabbitmqctl_eval_line_sets_the_timeout_at_run_time(operator: PrivateRabbitmqNode) -> None:
    operator.ctl("eval", "application:set_env(rabbit, consumer_timeout, 60000).")
    assert read_consumer_timeout(operator.name) == 60_000
    [argv] = commands(named_block("brokers.rst", "brokers-consumer-timeout-eval").code)
    result = subprocess.run(on_node(operator, argv), env=operator.env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert read_consumer_timeout(operator.name) == 7_200_000


def server_version(node: PrivateRabbitmqNode) -> tuple[int, ...]:
    answer = node.ctl("eval", "rabbit_misc:version().").strip().strip('"')
    return tuple(int(part) for part in re.findall(r"\d+", answer)[:3])


@pytest.mark.rabbitmq
def test_the_policy_line_is_taken_from_3_11_15_and_refused_before(operator: PrivateRabbitmqNode) -> None:
    [argv] = commands(named_block("brokers.rst", "brokers-consumer-timeout-policy").code)
    assert re.fullmatch(argv[3], settings.get().QUEUE_NAME + ".DQ")  # The pattern names the delay queue.
    assert not re.fullmatch(argv[3], settings.get().QUEUE_NAME)
    result = subprocess.run(on_node(operator, argv), env=operator.env, capture_output=True, text=True, timeout=120,
                            check=False)
    try:
        if server_version(operator) >= (3, 11, 15):
            assert result.returncode == 0, result.stderr
            listed = operator.ctl("list_policies", "--no-table-headers")
            assert "webhook-retries" in listed and '"consumer-timeout":7200000' in listed.replace(" ", "")
        else:
            # The line as such is right (the node parsed the pattern and the JSON); the key is what it does not know.
            assert result.returncode != 0
            assert "consumer-timeout" in result.stderr + result.stdout
            assert "not recognised" in result.stderr + result.stdout
    finally:
        subprocess.run([operator.ctl_path, "-q", "-n", operator.name, "clear_policy", "webhook-retries"],
                       env=operator.env, capture_output=True, timeout=120, check=False)


# --- Redis ------------------------------------------------------------------------------------------

REDIS_CONF = named_block("operations.rst", "operations-redis-conf").code
#: Starts a private redis-server in a folder, with these redis.conf lines; stopped after the test.
StartRedis = Callable[[Path, str], PrivateRedis]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[StartRedis]:
    started: list[PrivateRedis] = []

    def start(base: Path, config: str) -> PrivateRedis:
        server = PrivateRedis(base, config)
        started.append(server)
        try:
            server.start()
        except RedisUnavailable as exc:
            if IN_CI:
                pytest.fail("A private redis-server is needed in CI: %s" % exc)
            pytest.skip("No private redis-server: %s" % exc)
        return server

    yield start
    for server in started:
        server.kill()


def queue_a_retry(server: PrivateRedis, queue: str) -> None:
    """A webhook retry as a worker schedules it: a delayed message, on the server's delay queue."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=server.url)
    try:
        broker.declare_queue(queue)
        broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="deliver", args=(), kwargs={}, options={}),
                       delay=3_600_000)
    finally:
        broker.close()


def delay_queue_length(server: PrivateRedis, queue: str) -> int:
    with server.client() as client:
        return int(client.llen("dramatiq:%s.DQ" % queue)) + int(client.hlen("dramatiq:%s.DQ.msgs" % queue))


@pytest.mark.redis
def test_the_redis_conf_lines_are_in_force_and_keep_retries_across_a_restart(
    private_redis: StartRedis, tmp_path: Path
) -> None:
    documented = config_lines(REDIS_CONF)
    assert documented == {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}
    server = private_redis(tmp_path / "with", REDIS_CONF)
    with server.client() as client:
        assert {key: client.config_get(key)[key] for key in documented} == documented

    queue = unique("hw_docs")
    queue_a_retry(server, queue)
    server.shutdown_without_snapshot()
    server.start()
    assert delay_queue_length(server, queue) == 2  # The message's id in the queue, and the message.

    # Without the lines, the same stop loses it.
    bare = private_redis(tmp_path / "without", "")
    queue_a_retry(bare, queue)
    assert delay_queue_length(bare, queue) == 2
    bare.shutdown_without_snapshot()
    bare.start()
    assert delay_queue_length(bare, queue) == 0


@pytest.mark.redis
def test_under_noeviction_a_full_redis_refuses_the_enqueue(private_redis: StartRedis, tmp_path: Path) -> None:
    server = private_redis(tmp_path, REDIS_CONF)
    with server.client() as client:
        client.config_set("maxmemory", "1")  # Full, whatever it holds.
    with pytest.raises(redis.exceptions.ResponseError, match="used memory > 'maxmemory'"):
        queue_a_retry(server, unique("hw_docs"))
