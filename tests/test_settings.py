from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from hybiscus_webhooks import ImproperlyConfigured, settings
from hybiscus_webhooks.cli import main


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(name: str | None) -> None:
        if name is None:
            monkeypatch.delenv(settings.ENVIRONMENT_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(settings.ENVIRONMENT_VARIABLE, "tests.settings_modules." + name)
        settings.reload()

    return use


def test_defaults_without_a_module(module: Any) -> None:
    module(None)
    assert settings.MAX_WEBHOOKS == 3
    assert settings.REPORT_URL is None
    assert settings.SUBMISSION_PATHS == ("/api/v1/build-report", "/api/v1/preview-report")
    assert settings.MAX_BODY_BYTES == 10 * 1024 * 1024
    assert (settings.CONNECT_TIMEOUT, settings.READ_TIMEOUT) == (5.0, 15.0)


def test_uppercase_names_of_the_module_override_the_defaults(module: Any) -> None:
    module("good")
    assert settings.MAX_WEBHOOKS == 2
    assert settings.QUEUE_NAME == "webhooks_from_module"
    assert settings.CONNECT_TIMEOUT == 5.0
    assert "good" in settings.get().source


def test_an_unknown_name_is_an_error_that_names_it_and_suggests(module: Any) -> None:
    module("typo")
    with pytest.raises(ImproperlyConfigured, match=r"Unknown setting MAX_WEBHOK \(did you mean MAX_WEBHOOKS\?\)"):
        settings.get()


def test_a_wrong_type_names_the_setting(module: Any) -> None:
    module("bad_type")
    with pytest.raises(ImproperlyConfigured, match="CONNECT_TIMEOUT must be a number of seconds, got str"):
        settings.get()


def test_a_callable_path_that_does_not_import_names_the_setting(module: Any) -> None:
    module("bad_callable")
    with pytest.raises(ImproperlyConfigured, match="PLAN_CHECK: could not import"):
        settings.get()


def test_a_module_that_does_not_import_names_the_variable(module: Any) -> None:
    module("missing_module")
    with pytest.raises(ImproperlyConfigured, match="HYBISCUS_WEBHOOKS_SETTINGS names the module"):
        settings.get()


@pytest.mark.parametrize(("names", "message"), [
    ({"REPORT_URL": "https://a.example/report"}, "placeholder {task_id}"),
    ({"REPORT_URL": "https://a.example/{task_id}/{user}"}, "placeholder {task_id} and no other"),
    ({"REPORT_URL": "/relative/{task_id}"}, "absolute http or https URL"),
    ({"REPORT_URL": "https://a.example/{task_id"}, "not a valid template"),
    ({"MAX_BODY_BYTES": 0}, "MAX_BODY_BYTES must be at least 1"),
    ({"MAX_WEBHOOKS": True}, "MAX_WEBHOOKS must be an int, got bool"),
    ({"READ_TIMEOUT": 0}, "READ_TIMEOUT must be more than 0 seconds"),
    ({"SUBMISSION_PATHS": "/api"}, "SUBMISSION_PATHS must be a list of paths"),
    ({"QUEUE_NAME": ""}, "QUEUE_NAME must be a non-empty string"),
    ({"PLAN_CHECK": "os.sep"}, "PLAN_CHECK: 'os.sep' is not callable"),
    ({"ALLOW_PRIVATE_DESTINATIONS": "yes"}, "ALLOW_PRIVATE_DESTINATIONS must be True or False, got 'yes'"),
    ({"HTTPS_ONLY": 1}, "HTTPS_ONLY must be True or False, got 1"),
    ({"ALLOWED_NETWORKS": "10.0.0.0/8"}, "ALLOWED_NETWORKS must be a list of networks"),
    ({"ALLOWED_NETWORKS": ["10.0.0.1/8"]}, "ALLOWED_NETWORKS: '10.0.0.1/8' is not a network in CIDR notation"),
    ({"ALLOWED_NETWORKS": ["intranet.local"]}, "ALLOWED_NETWORKS: 'intranet.local' is not a network"),
    ({"CA_BUNDLE": "/no/such/ca.pem"}, "CA_BUNDLE must be the path of an existing file or None"),
    ({"RESOLVER": "socket.no_such_resolver"}, "RESOLVER: could not import 'socket.no_such_resolver'"),
    ({"DNS_CACHE_SECONDS": -1}, "DNS_CACHE_SECONDS must be 0 or more seconds, and finite, got -1"),
    ({"DNS_CACHE_SECONDS": float("inf")}, "DNS_CACHE_SECONDS must be 0 or more seconds, and finite, got inf"),
    ({"DNS_CACHE_SECONDS": float("nan")}, "DNS_CACHE_SECONDS must be 0 or more seconds, and finite, got nan"),
    ({"DNS_CACHE_SECONDS": "30"}, "DNS_CACHE_SECONDS must be a number of seconds, got str"),
    ({"NOT_A_SETTING": 1}, "Unknown setting NOT_A_SETTING"),
])
def test_configure_validates_like_the_module(names: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message.replace("{", r"\{").replace("}", r"\}")):
        settings.configure(**names)


def test_configure_then_reload(module: Any) -> None:
    module("good")
    settings.configure(MAX_WEBHOOKS=1)
    assert settings.MAX_WEBHOOKS == 1 and settings.QUEUE_NAME == "hybiscus_webhooks"
    settings.reload()
    assert settings.MAX_WEBHOOKS == 2


def test_a_per_process_value_is_built_on_first_use_and_again_after_a_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "_reload_callbacks", list(settings._reload_callbacks))  # Ours goes at teardown.
    builds: list[int] = []
    discarded: list[int] = []

    def build() -> int:
        builds.append(len(builds) + 1)
        return builds[-1]

    value = settings.PerProcess(build, discard=discarded.append)
    assert [value.get(), value.get()] == [1, 1]
    settings.reload()
    assert discarded == [1]
    assert value.get() == 2
    # In a forked child (another pid): its own value, and its parent's is never discarded there.
    monkeypatch.setattr(settings, "_pid", -1)
    settings.reload()
    assert discarded == [1]
    assert [value.get(), value.get()] == [3, 3]


def test_a_forked_child_builds_its_own_per_process_value() -> None:
    # In a fresh interpreter: forking this one, whose tests leave threads behind, may deadlock.
    script = """if True:
        import os
        from hybiscus_webhooks import settings

        value = settings.PerProcess(os.getpid)
        parent = value.get()
        pid = os.fork()
        if pid == 0:
            os._exit(0 if value.get() == os.getpid() != parent else 1)
        assert os.waitpid(pid, 0)[1] == 0, "the child used its parent's value"
        assert value.get() == parent == os.getpid()
    """
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_settings_read_as_plain_attributes_and_unknown_names_are_named() -> None:
    current = settings.configure(READ_TIMEOUT=3.0)
    assert vars(current)["READ_TIMEOUT"] == 3.0 == current.READ_TIMEOUT
    with pytest.raises(AttributeError, match=r"Unknown setting READ_TIMOUT \(did you mean READ_TIMEOUT\?\)"):
        current.READ_TIMOUT  # noqa: B018


def test_the_destination_settings(tmp_path: Any) -> None:
    import ipaddress
    import socket

    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    current = settings.configure(
        ALLOWED_NETWORKS=["10.20.0.0/16", "fd00::/8"], HTTPS_ONLY=True, CA_BUNDLE=str(bundle),
        RESOLVER="socket.getaddrinfo",
    )
    networks, https_only, ca_bundle = current.ALLOWED_NETWORKS, current.HTTPS_ONLY, current.CA_BUNDLE
    assert networks == (ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00::/8"))
    assert https_only is True and ca_bundle == str(bundle)
    assert current.RESOLVER is socket.getaddrinfo
    defaults = settings.configure()
    assert (defaults.ALLOW_PRIVATE_DESTINATIONS, defaults.ALLOWED_NETWORKS, defaults.HTTPS_ONLY) == (False, (), False)
    assert (defaults.CA_BUNDLE, defaults.RESOLVER) == (None, None)


def test_every_setting_is_in_the_readme_table() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [name for name in settings.DEFINITIONS if "| `%s` |" % name not in readme]
    assert missing == []


def test_plan_check_resolves_an_import_path() -> None:
    settings.configure(PLAN_CHECK="os.path.exists")
    import os.path

    assert settings.PLAN_CHECK is os.path.exists


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="did you mean QUEUE_NAME"):
        settings.QUEUE_NAM  # noqa: B018
    with pytest.raises(AttributeError):
        settings.not_a_setting  # noqa: B018


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.startswith("hybiscus-webhooks 0.")


def test_cli_check_prints_the_settings(module: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module("good")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "MAX_WEBHOOKS = 2" in out and "tests.settings_modules.good" in out


def test_cli_check_fails_on_a_bad_module(module: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module("typo")
    assert main(["check"]) == 1
    assert "Unknown setting MAX_WEBHOK" in capsys.readouterr().err


def test_cli_check_fails_without_report_url(module: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module(None)
    assert main(["check"]) == 1
    assert "REPORT_URL is not set" in capsys.readouterr().err
