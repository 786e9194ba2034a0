"""Settings, read from the module named by ``HYBISCUS_WEBHOOKS_SETTINGS``.

Only UPPERCASE names of that module count, and each must be one of ``DEFINITIONS``.
Nothing is read until a setting is first used; ``configure()`` replaces the module
for code and tests, ``reload()`` forgets what was loaded.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

from .destinations import parse_networks
from .errors import ImproperlyConfigured
from .sealing import parse_keys
from .signing import parse_secrets

#: The environment variable that names the settings module.
ENVIRONMENT_VARIABLE = "HYBISCUS_WEBHOOKS_SETTINGS"


@dataclass(frozen=True)
class Definition:
    name: str
    default: Any
    parse: Callable[[str, Any], Any]
    doc: str
    type: str
    secret: bool = False


def _int_at_least(minimum: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ImproperlyConfigured("%s must be an int, got %s." % (name, type(value).__name__))
        if value < minimum:
            raise ImproperlyConfigured("%s must be at least %d, got %d." % (name, minimum, value))
        return value

    return parse


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ImproperlyConfigured("%s must be a number of seconds, got %s." % (name, type(value).__name__))
    if not value > 0:
        raise ImproperlyConfigured("%s must be more than 0 seconds, got %r." % (name, value))
    return float(value)


def _seconds_or_zero(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ImproperlyConfigured("%s must be a number of seconds, got %s." % (name, type(value).__name__))
    if not 0 <= value < math.inf:
        raise ImproperlyConfigured("%s must be 0 or more seconds, and finite, got %r." % (name, value))
    return float(value)


def _nonempty_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ImproperlyConfigured("%s must be a non-empty string, got %r." % (name, value))
    return value


def _paths(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ImproperlyConfigured("%s must be a list of paths, got %r." % (name, value))
    for path in value:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ImproperlyConfigured("%s: every path must be a string starting with '/', got %r." % (name, path))
    return tuple(value)


def _report_url(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ImproperlyConfigured("%s must be a URL template string, got %s." % (name, type(value).__name__))
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImproperlyConfigured("%s must be an absolute http or https URL, got %r." % (name, value))
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
    except ValueError as exc:
        raise ImproperlyConfigured("%s is not a valid template (%s): %r." % (name, exc, value)) from None
    if fields != {"task_id"}:
        raise ImproperlyConfigured(
            "%s must contain the placeholder {task_id} and no other, got %r." % (name, value)
        )
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ImproperlyConfigured("%s must be True or False, got %r." % (name, value))
    return value


def _networks(name: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ImproperlyConfigured("%s must be a list of networks such as '10.1.0.0/16', got %r." % (name, value))
    try:
        return parse_networks(value)
    except ValueError as exc:
        raise ImproperlyConfigured("%s: %s." % (name, exc)) from None


def _optional_file(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.path.isfile(value):
        raise ImproperlyConfigured("%s must be the path of an existing file or None, got %r." % (name, value))
    return os.fspath(value)


def _hold_limit(name: str, value: Any) -> str | float | None:
    if value is None or value == "auto":
        return cast("str | None", value)
    if isinstance(value, str):
        raise ImproperlyConfigured("%s must be 'auto', None or a number of seconds, got %r." % (name, value))
    return _positive_seconds(name, value)


def _optional_callable(name: str, value: Any) -> Callable[..., Any] | None:
    if value is None or callable(value):
        return cast("Callable[..., Any] | None", value)
    if not isinstance(value, str):
        raise ImproperlyConfigured("%s must be a callable or an import path 'module.name', got %r." % (name, value))
    module_name, _, attribute = value.rpartition(".")
    if not module_name:
        raise ImproperlyConfigured("%s must be an import path 'module.name', got %r." % (name, value))
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured("%s: could not import %r (%s)." % (name, value, exc)) from exc
    if not callable(found):
        raise ImproperlyConfigured("%s: %r is not callable." % (name, value))
    return cast(Callable[..., Any], found)


def _records_url(name: str, value: Any) -> str | bool | None:
    if value is None or value is False:
        return cast("bool | None", value)
    # The URL may hold a password: errors describe it, never echo it.
    if not isinstance(value, str) or urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured("%s must be a redis://, rediss:// or unix:// URL, None or False." % name)
    return value


def _metrics_registry(name: str, value: Any) -> Any:
    if value is None or value is False:
        return value
    if isinstance(value, str):
        module_name, _, attribute = value.rpartition(".")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured("%s: could not import %r (%s)." % (name, value, exc)) from exc
    if not callable(getattr(value, "register", None)):
        raise ImproperlyConfigured("%s must be a prometheus_client CollectorRegistry, got %r." % (name, value))
    return value


def _optional_int_at_least(minimum: int) -> Callable[[str, Any], int | None]:
    parse = _int_at_least(minimum)

    def parse_optional(name: str, value: Any) -> int | None:
        return None if value is None else parse(name, value)

    return parse_optional


def _optional_str(name: str, value: Any) -> str | None:
    return None if value is None else _nonempty_str(name, value)


_DEFINITIONS = [
    Definition(
        "REPORT_URL", None, _report_url, type="str",
        doc="Template of the report's URL sent in every webhook body, with a {task_id} placeholder, e.g. "
        "'https://api.example.com/api/v1/get-report?task_id={task_id}'. Required to send webhooks.",
    ),
    Definition(
        "SUBMISSION_PATHS", ("/api/v1/build-report", "/api/v1/preview-report"), _paths, type="list[str]",
        doc="Paths whose POST requests the middleware validates; every other request passes untouched.",
    ),
    Definition(
        "MAX_BODY_BYTES", 10 * 1024 * 1024, _int_at_least(1), type="int",
        doc="Largest submission body the middleware reads; a larger one gets 413.",
    ),
    Definition(
        "MAX_WEBHOOKS", 3, _int_at_least(0), type="int",
        doc="Most webhooks one report may list.",
    ),
    Definition(
        "PLAN_CHECK", None, _optional_callable, type="callable | import path | None",
        doc="Called with the ASGI scope of a submission that lists webhooks; a false answer gets 402. "
        "May be async. None allows every account.",
    ),
    Definition(
        "QUEUE_NAME", "hybiscus_webhooks", _nonempty_str, type="str",
        doc="Dramatiq queue of the delivery actor.",
    ),
    Definition(
        "CONNECT_TIMEOUT", 5.0, _positive_seconds, type="float",
        doc="Seconds to wait for a receiver to accept the connection.",
    ),
    Definition(
        "READ_TIMEOUT", 15.0, _positive_seconds, type="float",
        doc="Seconds to wait for each read of the receiver's answer; the whole answer must also arrive "
        "within this time.",
    ),
    Definition(
        "MAX_RESPONSE_BYTES", 4096, _int_at_least(0), type="int",
        doc="Most bytes of a receiver's answer that an attempt reads; the rest is never read.",
    ),
    Definition(
        "SIGNING_SECRETS", (), parse_secrets, type="list[str]", secret=True,
        doc="Standard Webhooks secrets ('whsec_' and the base64 of 24 to 64 bytes). With any, every attempt "
        "carries webhook-timestamp and webhook-signature with one signature per secret (list the new one "
        "first while rotating). Empty: only webhook-id is sent.",
    ),
    Definition(
        "MESSAGE_KEYS", (), parse_keys, type="list[str]", secret=True,
        doc="Keys that seal the URL and auth header each delivery message carries, so that neither shows "
        "in the broker nor in a message's repr (`hybiscus-webhooks new-key` makes one). The first seals, "
        "every one opens: to rotate, put a new key first and drop the old one once no message sealed "
        "with it is waiting (about 2 hours 7 minutes, or longer for dead letters you may redeliver). Every "
        "web process and worker needs the same list. Empty: they travel in clear.",
    ),
    Definition(
        "RECORDS_REDIS_URL", None, _records_url,
        type="redis URL | None | False", secret=True,
        doc="Redis where every delivery and attempt is recorded. None: the Redis of the delivery actor's "
        "RedisBroker if it has one, else no records. False: no records.",
    ),
    Definition(
        "RECORDS_KEY_PREFIX", "hybiscus_webhooks:records:", _nonempty_str, type="str",
        doc="Prefix of every Redis key the records use.",
    ),
    Definition(
        "RECORDS_RETENTION", 7 * 24 * 3600.0, _positive_seconds, type="float",
        doc="Seconds a delivery's record is kept after its last change (default 7 days, like Dramatiq's "
        "dead letters).",
    ),
    Definition(
        "ON_EXHAUSTED", None, _optional_callable, type="callable | import path | None",
        doc="Called in the worker with a hybiscus_webhooks.ExhaustedDelivery (no secrets in it) when a "
        "delivery's last retry has failed; its errors are logged, never raised. At least once, like the "
        "webhooks: a worker that dies right after may call it again.",
    ),
    Definition(
        "METRICS_REGISTRY", None, _metrics_registry,
        type="CollectorRegistry | import path | None | False",
        doc="Prometheus registry of the library's metrics (needs the 'prometheus' extra). None: "
        "prometheus_client's default registry. False: no metrics.",
    ),
    Definition(
        "BROKER_MODULE", None, _optional_str,
        type="str | None",
        doc="For the hybiscus-webhooks command: the module that sets up your broker, as you give it to the "
        "dramatiq command ('myapp.broker', or 'myapp.broker:attribute'). --broker-module overrides it.",
    ),
    Definition(
        "ALLOW_PRIVATE_DESTINATIONS", False, _bool, type="bool",
        doc="Let webhooks reach any address, loopback and private networks included. For development and "
        "tests only: a webhook URL is customer input, so in production list your own networks in "
        "ALLOWED_NETWORKS instead.",
    ),
    Definition(
        "ALLOWED_NETWORKS", (), _networks, type="list[str]",
        doc="Networks in CIDR notation (e.g. '10.20.0.0/16') that webhooks may reach although they are not "
        "public; every other loopback, private, link-local, shared, multicast or reserved address is refused.",
    ),
    Definition(
        "HTTPS_ONLY", False, _bool, type="bool",
        doc="Accept and send only https webhook URLs.",
    ),
    Definition(
        "CA_BUNDLE", None, _optional_file, type="path | None",
        doc="File of CA certificates that receivers' certificates are checked against; None uses the "
        "system's. Certificates are always verified.",
    ),
    Definition(
        "RESOLVER", None, _optional_callable, type="callable | import path | None",
        doc="Called with (host, port), returns the host's IP addresses as strings; None uses "
        "socket.getaddrinfo. Every address it returns is vetted before the sender connects to one.",
    ),
    Definition(
        "DNS_CACHE_SECONDS", 30.0, _seconds_or_zero, type="float",
        doc="How long a worker process goes on sending to the addresses it resolved and vetted for a host "
        "name while attempts to it succeed; a failed attempt makes the next one resolve the name again. "
        "0: resolve before every attempt.",
    ),
    Definition(
        "RETRY_HOLD_LIMIT", "auto", _hold_limit, type="'auto' | float | None",
        doc="Longest time, in seconds, a worker holds a scheduled retry unacked; a longer wait is split into "
        "holds that send nothing, and the schedule stays the same. Keep it below RabbitMQ's consumer_timeout. "
        "'auto': 900 s on RabbitMQ, no limit on other brokers; None: no limit.",
    ),
    Definition(
        "SLOW_DESTINATION_SECONDS", 5.0, _positive_seconds, type="float",
        doc="An attempt that takes this long or more (or is still unanswered after this long), or times out, "
        "marks its destination (scheme, host and port) slow in its worker process for 60 s after it.",
    ),
    Definition(
        "SLOW_DESTINATION_SLOTS", 1, _optional_int_at_least(1), type="int | None",
        doc="Most attempts that one worker process runs at once to all the destinations marked slow together; "
        "keep it below the worker's --threads. A delivery that finds no free slot waits on the queue for its "
        "turn, without counting as an attempt. None: no limit.",
    ),
]

#: Every setting, by name.
DEFINITIONS: Mapping[str, Definition] = {definition.name: definition for definition in _DEFINITIONS}


class Settings:
    """A validated, read-only set of values for every setting."""

    def __init__(self, names: Mapping[str, Any], *, source: str) -> None:
        unknown = sorted(set(names) - set(DEFINITIONS))
        if unknown:
            raise ImproperlyConfigured(
                "Unknown setting %s%s%s." % (unknown[0], _did_you_mean(unknown[0]), _in(source))
            )
        values = {}
        for name, definition in DEFINITIONS.items():
            try:
                values[name] = definition.parse(name, names[name]) if name in names else definition.default
            except ImproperlyConfigured as exc:
                raise ImproperlyConfigured("%s%s" % (str(exc).rstrip("."), _in(source) + ".")) from exc.__cause__
        self._values = values
        self.source = source
        # Read as plain attributes: a delivery reads several, and __getattr__ is a Python call each time.
        # Setting names are upper case, so none can hide a method or the two attributes above.
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        # Only for a name that is not a setting.
        raise AttributeError("Unknown setting %s%s." % (name, _did_you_mean(name)))

    def as_dict(self) -> dict[str, Any]:
        """Every value, with secret ones masked: safe to print."""
        return {
            name: ("********" if DEFINITIONS[name].secret and value else value)
            for name, value in self._values.items()
        }

    def __repr__(self) -> str:
        return "<Settings from %s>" % self.source


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, DEFINITIONS, n=1)
    return " (did you mean %s?)" % close[0] if close else ""


def _in(source: str) -> str:
    return " in %s" % source


_lock = threading.Lock()
_current: Settings | None = None
_reload_callbacks: list[Callable[[], None]] = []


def _load_from_environment() -> Settings:
    module_name = os.environ.get(ENVIRONMENT_VARIABLE)
    if not module_name:
        return Settings({}, source="the defaults (%s is not set)" % ENVIRONMENT_VARIABLE)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            "%s names the module %r, which could not be imported: %s" % (ENVIRONMENT_VARIABLE, module_name, exc)
        ) from exc
    names = {name: getattr(module, name) for name in dir(module) if name.isupper() and not name.startswith("_")}
    return Settings(names, source="settings module %r" % module_name)


def get() -> Settings:
    """The settings in force, loaded on first use."""
    global _current
    current = _current
    if current is None:
        with _lock:
            if _current is None:
                _current = _load_from_environment()
            current = _current
    return current


def configure(**names: Any) -> Settings:
    """Use these values (and the defaults for the rest) instead of the settings module."""
    global _current
    settings = Settings(names, source="configure()")
    with _lock:
        _current = settings
    _notify()
    return settings


def reload() -> None:
    """Forget the settings in force; the next use reads the settings module again."""
    global _current
    with _lock:
        _current = None
    _notify()


def on_reload(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the settings change, to drop what was built from them."""
    _reload_callbacks.append(callback)


def _notify() -> None:
    for callback in list(_reload_callbacks):
        callback()


T = TypeVar("T")

# This process's id, set again in a forked child: os.getpid() is a system call, and PerProcess.get
# runs several times in every delivery.
_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


class PerProcess(Generic[T]):
    """A value built from the settings on first use in each process, and built again after a reload.

    The threads of a process share it; a forked child builds its own, since a parent's connections
    and threads do not come along. ``discard`` gets a value of this process that a reload replaced.
    """

    def __init__(self, build: Callable[[], T], *, discard: Callable[[T], None] | None = None) -> None:
        self._build = build
        self._discard = discard
        self._lock = threading.Lock()
        self._built: tuple[int, T] | None = None
        on_reload(self.forget)

    def get(self) -> T:
        built = self._built
        if built is None or built[0] != _pid:
            with self._lock:
                if self._built is None or self._built[0] != _pid:
                    self._built = (_pid, self._build())
                built = self._built
        return built[1]

    def forget(self) -> None:
        with self._lock:
            forgotten, self._built = self._built, None
        if forgotten is not None and forgotten[0] == _pid and self._discard is not None:
            self._discard(forgotten[1])


def __getattr__(name: str) -> Any:
    if name.isupper():
        return getattr(get(), name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
