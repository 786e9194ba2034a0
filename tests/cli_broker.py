"""Holds the broker of a CLI test, for ``--broker-module tests.cli_broker:broker``."""

from __future__ import annotations

from typing import Any

broker: Any = None
