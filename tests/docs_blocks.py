"""Reads the code blocks of the docs' pages and lays their files out as a project (see docs/contributing.rst).

Also lists every literal block of every page, the READMEs included, of whatever kind: a test checks
that each is run by some test or is marked as an illustration, with the reason.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
#: The Markdown pages, beside the docs: paths from the repository's root.
MARKDOWN_PAGES = ("README.md", "contrib/README.md", "bench/README.md")

_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. code-block:: *(?P<language>\S+) *$")
_OPTION = re.compile(r"^ +:(?P<name>[\w-]+):(?: +(?P<value>.*))?$")
#: First line of a block that is a file: "# path/name.py", or "# path/name.py (continued)" to append.
FILE_LINE = re.compile(r"^# (?P<path>[\w/.-]+\.py)(?P<continued> \(continued\))?$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    code: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def file(self) -> str | None:
        match = FILE_LINE.match(self.code.split("\n", 1)[0]) if self.language == "python" else None
        return match["path"] if match else None


def pages() -> list[str]:
    return sorted(path.name for path in DOCS.glob("*.rst"))


def code_blocks(page: str) -> list[Block]:
    lines = (DOCS / page).read_text().split("\n")
    blocks = []
    index = 0
    while index < len(lines):
        directive = _DIRECTIVE.match(lines[index])
        index += 1
        if not directive:
            continue
        start, depth, options = index, len(directive["indent"]), {}
        while index < len(lines) and (option := _OPTION.match(lines[index])):
            options[option["name"]] = option["value"] or ""
            index += 1
        body = []
        while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > depth):
            body.append(lines[index])
            index += 1
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(Block(page, start, directive["language"], code, options))
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def named_block(page: str, name: str) -> Block:
    [block] = [block for block in code_blocks(page) if block.options.get("name") == name]
    return block


def markdown_block(page: str, name: str) -> Block:
    """The fenced block of a Markdown page (a path from the root) named by a ``<!-- name: ... -->`` line above it."""
    [block] = [block for block in literal_blocks(page) if block.options.get("name") == name]
    return block


def commands(text: str) -> list[list[str]]:
    """A shell block's commands, split as a shell would (a quoted argument may span lines)."""
    found, pending = [], ""
    for line in text.replace("\\\n", " ").split("\n"):
        pending += line if not pending else "\n" + line
        try:
            argv = shlex.split(pending, comments=True)
        except ValueError:  # An open quote: the command goes on.
            continue
        if argv:
            found.append(argv)
        pending = ""
    assert not pending, "unterminated command: %r" % pending
    return found


#: Directives that make no literal block (anything else found on a page fails tests/test_docs_inventory.py).
NOT_LITERAL = frozenset({
    "toctree", "list-table", "graphviz", "hybiscus-settings", "hybiscus-schedule", "admonition", "note", "warning",
    "important", "tip", "seealso", "automodule", "autoclass", "autofunction", "autoexception", "autodata",
    "autoattribute", "automethod", "currentmodule", "module", "py:module",
})
_ANY_DIRECTIVE = re.compile(r"^ *\.\. (?P<name>[\w:-]+)::")
_FENCE = re.compile(r"^ *(?P<fence>```+|~~~+) *(?P<language>[\w-]*)")  # Indented too: in a list item.
_MARKDOWN_NAME = re.compile(r"^<!-- name: (?P<name>[\w-]+) -->$")


def all_pages() -> list[str]:
    """Every page with literal blocks: the docs' pages (``docs/...``) and the Markdown pages."""
    return ["docs/" + page for page in pages()] + list(MARKDOWN_PAGES)


def literal_blocks(page: str) -> list[Block]:
    """Every literal block of a page (a path from the root); ``language`` is "::" for a bare literal block."""
    if page.endswith(".md"):
        return _markdown_blocks(page)
    name = page.removeprefix("docs/")
    blocks = [Block(page, block.line, block.language, block.code, block.options) for block in code_blocks(name)]
    lines = (DOCS / name).read_text().split("\n")
    for number, line in enumerate(lines, start=1):
        directive = _ANY_DIRECTIVE.match(line)
        if directive is not None and directive["name"] not in NOT_LITERAL and not _DIRECTIVE.match(line):
            blocks.append(Block(page, number, ".. %s::" % directive["name"], line))
        elif directive is None and not line.lstrip().startswith("..") and line.rstrip().endswith("::"):
            blocks.append(Block(page, number, "::", line))
    return sorted(blocks, key=lambda block: block.line)


def _markdown_blocks(page: str) -> list[Block]:
    lines = (ROOT / page).read_text().split("\n")
    blocks = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        start = index
        while index < len(lines) and not lines[index].lstrip().startswith(opening["fence"]):
            index += 1
        named = _MARKDOWN_NAME.match(lines[start - 2].strip()) if start >= 2 else None
        options = {"name": named["name"]} if named else {}
        blocks.append(Block(page, start, opening["language"] or "text", "\n".join(lines[start:index]) + "\n", options))
        index += 1
    return blocks


@dataclass
class Project:
    """The files of one page, written under ``root``, and the page's other Python blocks as one script."""

    root: Path
    files: dict[str, str]
    script: str

    def module_of(self, file: str) -> str:
        return file.removesuffix(".py").replace("/", ".")

    def load(self, file: str) -> ModuleType:
        """Import one of the files in this process, under a name of its own."""
        name = "docs_example_%s_%s" % (self.root.name, self.module_of(file).replace(".", "_"))
        spec = importlib.util.spec_from_file_location(name, self.root / file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def write_project(page: str, root: Path) -> Project:
    files: dict[str, str] = {}
    snippets = []
    for block in code_blocks(page):
        if block.language != "python":
            continue
        match = FILE_LINE.match(block.code.split("\n", 1)[0])
        if match is None:
            snippets.append("# %s, line %d\n%s" % (page, block.line, block.code))
        elif match["continued"]:
            assert match["path"] in files, "%s line %d continues a file never started" % (page, block.line)
            files[match["path"]] += "\n\n" + block.code.split("\n", 1)[1]
        else:
            assert match["path"] not in files, "%s line %d starts %s a second time" % (page, block.line, match["path"])
            files[match["path"]] = block.code
    for name, code in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
        for folder in path.relative_to(root).parents:
            if folder != Path(".") and not (root / folder / "__init__.py").exists():
                (root / folder / "__init__.py").write_text("")
    return Project(root, files, "\n\n".join(snippets))
