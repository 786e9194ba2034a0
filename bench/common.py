"""What every benchmark shares: the printed table, the machine description, ports, waiting."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

#: Packages whose versions are printed with the figures.
VERSIONS = ("hybiscus-webhooks", "dramatiq", "starlette", "marshmallow", "urllib3", "redis", "pika", "uvicorn")


@dataclass
class Row:
    """One measured comparison: a baseline figure, ours, and their ratio in the direction of the target."""

    bench: str
    case: str
    unit: str
    baseline: float | None
    ours: float | None
    ratio: float | None = None
    target: str = ""
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.ratio is None or not self.target:
            return ""
        op, _, limit = self.target.partition(" ")
        value = float(limit.rstrip("x"))
        met = self.ratio <= value if op == "<=" else self.ratio >= value
        return "met" if met else "MISSED"


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(format_row(row), flush=True)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        print("  note: " + text, flush=True)


HEADER = "%-10s %-58s %11s %11s %7s %8s %6s" % ("bench", "case", "baseline", "ours", "ratio", "target", "")


def format_row(row: Row) -> str:
    line = "%-10s %-58s %11s %11s %7s %8s %6s" % (
        row.bench, row.case, _figure(row.baseline, row.unit), _figure(row.ours, row.unit),
        "" if row.ratio is None else "%.3fx" % row.ratio, row.target, row.verdict,
    )
    return line + ("  (%s)" % row.note if row.note else "")


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return "%.0f %s" % (value, unit)
    if value >= 10:
        return "%.1f %s" % (value, unit)
    return "%.3g %s" % (value, unit)


def machine() -> list[str]:
    """Lines that say what the figures were measured on."""
    lines = [
        "date: %s" % time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine: %s, %s, nproc %d, %s" % (platform.system(), platform.machine(), os.cpu_count() or 0, _cpu_model()),
        "load average (1, 5, 15 min): %s" % " ".join("%.2f" % value for value in os.getloadavg()),
        "python: %s" % sys.version.split()[0],
        "versions: " + ", ".join("%s %s" % (name, _version(name)) for name in VERSIONS),
    ]
    for tool, command in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "-v"]), ("redis-server", ["redis-server", "-v"])):
        lines.append("%s: %s" % (tool, _tool_version(command)))
    return lines


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = "it") -> Any:
    """Poll ``condition`` until it returns something true; raise ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("Gave up waiting for %s after %.0f s." % (what, timeout))
        time.sleep(interval)


def abba(round_number: int, first: str, second: str) -> list[str]:
    """The two variants in the order of this round: flipped every other round, so that drift in the
    machine's speed falls on both alike and each round's ratio is of two runs side by side."""
    return [first, second] if round_number % 2 == 0 else [second, first]


def per_round(values: Iterable[float]) -> str:
    """Each round's figure, for a row's note: ``1088/1024/1031``."""
    return "/".join("%.0f" % value for value in values)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def median_ratio(baseline: Iterable[float], measured: Iterable[float]) -> float:
    """The median of the rounds' ratios, measured / baseline: each round ran the two side by side."""
    return median(value / max(base, 1e-9) for base, value in zip(baseline, measured, strict=True))


def rss_kib(pid: int) -> int:
    """Resident set size of one process, from /proc."""
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise LookupError("no VmRSS for pid %d" % pid)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, from /proc."""
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    """Every process whose command name (``/proc/PID/comm``) is ``name``, e.g. RabbitMQ's ``beam.smp``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/comm" % entry) as comm:
                    if comm.read().strip() == name:
                        found.append(int(entry))
            except OSError:  # It ended meanwhile.
                continue
    return found


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    """User and system CPU time so far of these processes and their children (nginx's workers, say)."""
    total = 0.0
    for pid in pids:
        for each in [pid, *children(pid)]:
            try:
                total += cpu_seconds(each)
            except OSError:  # It ended meanwhile.
                continue
    return total


def children(pid: int) -> list[int]:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as found:
            return [int(child) for child in found.read().split()]
    except OSError:
        return []
