"""Every literal block of every page is run by a test, or is marked here as an illustration, with the reason.

The pages are docs/*.rst and the Markdown pages of tests/docs_blocks.py. A block is known by its page
and its name (``:name:`` in reStructuredText, a ``<!-- name: ... -->`` line just above the fence in
Markdown). The Python blocks of docs/*.rst need no name: tests/test_docs_examples.py runs them all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .docs_blocks import FILE_LINE, ROOT, Block, all_pages, literal_blocks

#: Blocks a test runs, or compares with what the library really does: (page, name) -> that test's module.
EXECUTED = {
    ("docs/brokers.rst", "brokers-consumer-timeout-conf"): "tests/test_docs_broker_settings.py",
    ("docs/brokers.rst", "brokers-consumer-timeout-eval"): "tests/test_docs_broker_settings.py",
    ("docs/brokers.rst", "brokers-consumer-timeout-policy"): "tests/test_docs_broker_settings.py",
    ("docs/brokers.rst", "brokers-check-node"): "tests/test_docs_broker_settings.py",
    ("docs/operations.rst", "operations-redis-conf"): "tests/test_docs_broker_settings.py",
    ("docs/operations.rst", "operations-separate-workers"): "tests/test_docs_operations.py",
    ("docs/operations.rst", "operations-pinned-workers"): "tests/test_docs_operations.py",
    ("docs/operations.rst", "operations-cli"): "tests/test_docs_operations.py",
    ("docs/customers.rst", "customers-submission"): "tests/test_docs_customers.py",
    ("docs/customers.rst", "invalid-webhooks-answer"): "tests/test_docs_customers.py",
    ("docs/customers.rst", "webhook-request"): "tests/test_docs_customers.py",
    ("docs/quickstart.rst", "quickstart-run"): "tests/test_docs_quickstart.py",
    ("README.md", "readme-submission"): "tests/test_docs_customers.py",
    ("README.md", "readme-run"): "tests/test_readme.py",
    ("README.md", "readme-curl"): "tests/test_readme.py",
    ("contrib/README.md", "contrib-receiver"): "tests/contrib/test_receiver.py",
    ("contrib/README.md", "contrib-report-server"): "tests/e2e/test_stack.py",
}

_INSTALLS = ("installs from PyPI, which the tests cannot reach; they run in an environment where the package "
             "and its extras are installed already")

#: Blocks shown but not run: (page, name) -> why.
ILLUSTRATIVE = {
    ("docs/quickstart.rst", "quickstart-install-demo"):
        _INSTALLS + ", and tests/e2e/test_demo.py runs `hybiscus-webhooks demo --once`",
    ("docs/quickstart.rst", "quickstart-install"): _INSTALLS,
    ("docs/contributing.rst", "contributing-build"):
        "the docs build itself, which .ci/run runs as the tox env docs (warnings are errors)",
    ("README.md", "readme-install-demo"):
        _INSTALLS + ", and tests/e2e/test_demo.py runs `hybiscus-webhooks demo --once`",
    ("README.md", "readme-install"): _INSTALLS,
    ("README.md", "readme-webhook"):
        "an abridged request with placeholders; the whole request is docs/customers.rst's webhook-request, "
        "which tests/test_docs_customers.py compares with a real delivery",
    ("README.md", "readme-receiving"):
        "a fragment (no imports, no route); the whole example is contrib/receiving_example.py, "
        "which tests/test_receiving.py runs",
    ("README.md", "readme-tox"): "runs the whole suite, tox matrix and all: that is what CI runs (.ci/run)",
    ("bench/README.md", "bench-run"):
        "benchmarks that take up to 30 minutes; tests/test_bench_smoke.py runs each with --quick",
}


def block_key(block: Block) -> tuple[str, str | None]:
    return block.page, block.options.get("name")


def is_run_python(block: Block) -> bool:
    """Python that a test runs without naming it: every Python block of the docs, the README's file blocks."""
    if block.language != "python":
        return False
    if block.page.startswith("docs/"):
        return True
    return block.page == "README.md" and FILE_LINE.match(block.code.split("\n", 1)[0]) is not None


def every_block() -> list[Block]:
    return [block for page in all_pages() for block in literal_blocks(page)]


def test_the_pages_have_literal_blocks_of_every_kind() -> None:
    languages = {block.language for block in every_block()}
    assert {"python", "sh", "ini", "json", "http"} <= languages, languages
    assert len(every_block()) >= 50


@pytest.mark.parametrize("page", all_pages())
def test_every_literal_block_is_run_or_marked_as_an_illustration(page: str) -> None:
    unaccounted = []
    for block in literal_blocks(page):
        if block.language in ("::",) or block.language.startswith(".."):
            unaccounted.append("%s line %d: %s; write a `.. code-block::` with a `:name:` instead, or teach "
                               "tests/docs_blocks.py that this directive makes no literal block"
                               % (page, block.line, block.code.strip()))
        elif is_run_python(block):
            continue
        elif block.options.get("name") is None:
            unaccounted.append("%s line %d: a %s block without a name" % (page, block.line, block.language))
        elif block_key(block) not in EXECUTED and block_key(block) not in ILLUSTRATIVE:
            unaccounted.append("%s line %d: %r is neither run by a test (EXECUTED) nor marked as an illustration "
                               "(ILLUSTRATIVE)" % (page, block.line, block.options["name"]))
    assert unaccounted == []


def test_every_entry_names_a_block_that_exists_once() -> None:
    keys = [block_key(block) for block in every_block() if block.options.get("name")]
    for key in [*EXECUTED, *ILLUSTRATIVE]:
        assert keys.count(key) == 1, key
    assert not set(EXECUTED) & set(ILLUSTRATIVE)


def test_the_test_that_runs_a_block_names_it() -> None:
    for (page, name), module in EXECUTED.items():
        assert '"%s"' % name in (ROOT / module).read_text(), "%s does not use %s of %s" % (module, name, page)


def test_every_illustration_says_why() -> None:
    assert all(len(reason.split()) >= 5 for reason in ILLUSTRATIVE.values())


def test_a_bare_literal_block_or_an_unknown_directive_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from . import docs_blocks

    (tmp_path / "page.rst").write_text(
        "Title\n=====\n\nAn example::\n\n   run this\n\n.. literalinclude:: x.sh\n\n"
        ".. code-block:: sh\n   :name: named\n\n   echo\n")
    monkeypatch.setattr(docs_blocks, "DOCS", tmp_path)
    found = [(block.line, block.language, block.options.get("name")) for block in literal_blocks("docs/page.rst")]
    assert found == [(4, "::", None), (8, ".. literalinclude::", None), (10, "sh", "named")]


def test_markdown_fences_are_found_indented_or_not_with_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from . import docs_blocks

    (tmp_path / "page.md").write_text(
        "# Title\n\n<!-- name: first -->\n```sh\necho 1\n```\n\n- a step:\n\n  ~~~\n  echo 2\n  ~~~\n")
    monkeypatch.setattr(docs_blocks, "ROOT", tmp_path)
    found = [(block.line, block.language, block.options.get("name"), block.code)
             for block in literal_blocks("page.md")]
    assert found == [(4, "sh", "first", "echo 1\n"), (10, "text", None, "  echo 2\n")]
