"""Every example of the docs runs (the rules are in docs/contributing.rst), and the generated tables are right."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import hybiscus_webhooks
from hybiscus_webhooks import settings

from .docs_blocks import DOCS, Project, code_blocks, pages, write_project

# Files that a test module of their own runs: tests/test_docs_quickstart.py and tests/test_docs_customers.py.
DEDICATED = {
    ("quickstart.rst", "myapp/broker.py"),
    ("quickstart.rst", "myapp/web.py"),
    ("quickstart.rst", "myapp/web_fastapi.py"),
    ("quickstart.rst", "receiver.py"),
    ("quickstart.rst", "myapp/render_job.py"),
    ("customers.rst", "customer_receiver.py"),
    ("customers.rst", "customer_receiver_helper.py"),
}


def is_settings_module(file: str) -> bool:
    return file.endswith("settings.py")


def is_test_module(file: str) -> bool:
    return Path(file).name.startswith("test_")


def run_python(project: Project, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != settings.ENVIRONMENT_VARIABLE}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.root), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, *args], cwd=project.root, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_the_docs_have_python_examples() -> None:
    counts = {page: sum(block.language == "python" for block in code_blocks(page)) for page in pages()}
    assert sum(counts.values()) >= 15, counts
    assert counts["quickstart.rst"] >= 6 and counts["testing.rst"] >= 5


@pytest.mark.parametrize("page", pages())
def test_every_file_of_a_page_is_used(page: str, tmp_path: Path) -> None:
    project = write_project(page, tmp_path)
    unused = [
        file for file in project.files
        if (page, file) not in DEDICATED and not is_settings_module(file) and not is_test_module(file)
        and project.module_of(file) not in project.script
    ]
    assert unused == [], "Nothing runs these files of %s: import them in the page or give them a test." % page


def pages_with_scripts() -> list[str]:
    return [page for page in pages()
            if any(block.language == "python" and block.file is None for block in code_blocks(page))]


@pytest.mark.parametrize("page", pages_with_scripts())
def test_the_python_blocks_of_a_page_run(page: str, tmp_path: Path) -> None:
    project = write_project(page, tmp_path)
    (tmp_path / "page_script.py").write_text(project.script)
    result = run_python(project, "page_script.py")
    assert result.returncode == 0, "The examples of %s failed:\n%s" % (page, result.stderr)


def files_where(check: Callable[[str], bool]) -> list[tuple[str, str]]:
    found = []
    for page in pages():
        for block in code_blocks(page):
            if block.file is not None and check(block.file) and (page, block.file) not in found:
                found.append((page, block.file))
    return found


@pytest.mark.parametrize(("page", "file"), files_where(is_settings_module))
def test_settings_modules_pass_the_check_command(page: str, file: str, tmp_path: Path) -> None:
    project = write_project(page, tmp_path)
    env_name = settings.ENVIRONMENT_VARIABLE
    code = "import os, sys; os.environ[%r] = %r; from hybiscus_webhooks.cli import main; sys.exit(main(['check']))" % (
        env_name, project.module_of(file))
    result = run_python(project, "-c", code)
    assert result.returncode == 0, result.stderr
    assert "Settings from settings module %r" % project.module_of(file) in result.stdout


@pytest.mark.parametrize(("page", "file"), files_where(is_test_module))
def test_test_modules_pass(page: str, file: str, tmp_path: Path) -> None:
    project = write_project(page, tmp_path)
    result = run_python(project, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider", file, timeout=300)
    tests = len(re.findall(r"^def test_", project.files[file], flags=re.M))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^%d passed" % tests, result.stdout, flags=re.M), result.stdout


def load_docs_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_tables", DOCS / "_ext" / "docs_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_schedule_table() -> None:
    assert load_docs_tables().schedule_rows() == [
        ("1", "none", "0"),
        ("2", "30 s", "+30 s"),
        ("3", "1 min", "+1 min 30 s"),
        ("4", "2 min", "+3 min 30 s"),
        ("5", "4 min", "+7 min 30 s"),
        ("6", "8 min", "+15 min 30 s"),
        ("7", "16 min", "+31 min 30 s"),
        ("8", "32 min", "+1 h 3 min 30 s"),
        ("9", "64 min", "+2 h 7 min 30 s"),
    ]


def test_the_settings_table_has_every_setting_with_its_default_and_doc() -> None:
    rows = load_docs_tables().settings_rows()
    assert [row[0] for row in rows] == list(settings.DEFINITIONS)
    by_name = {name: (kind, default, doc) for name, kind, default, doc in rows}
    assert by_name["MAX_BODY_BYTES"][:2] == ("int", "10485760 (10 MiB)")
    assert by_name["SUBMISSION_PATHS"][1] == "'/api/v1/build-report', '/api/v1/preview-report'"
    assert by_name["REPORT_URL"][1] == "None"
    assert by_name["READ_TIMEOUT"][1] == "15.0"
    assert all(doc.strip() and kind.strip() for kind, _, doc in by_name.values())


def test_the_api_reference_documents_every_public_name() -> None:
    text = (DOCS / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. auto\w+:: hybiscus_webhooks\.(\w+)$", text, flags=re.M))
    assert set(hybiscus_webhooks.__all__) - {"__version__"} <= documented


# The features still being built, by page: none at the moment.
COMING: dict[str, str] = {}


def test_coming_features_are_in_one_admonition_per_page() -> None:
    for page in pages():
        text = (DOCS / page).read_text()
        found = re.findall(r"^\.\. admonition:: Coming.*$", text, flags=re.M)
        assert found == ([COMING[page]] if page in COMING else []), page
