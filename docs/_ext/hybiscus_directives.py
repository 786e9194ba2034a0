"""Directives that render tables from the code: ``.. hybiscus-settings::`` and ``.. hybiscus-schedule::``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import docs_tables
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, widths: Sequence[int], literal_columns: Sequence[int] = (),
    row_ids: Sequence[str] | None = None,
) -> nodes.table:
    table = nodes.table()
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head += _row(header, literal_columns=())
    body = nodes.tbody()
    group += body
    for index, cells in enumerate(rows):
        row = _row(cells, literal_columns=literal_columns)
        if row_ids is not None:
            row["ids"].append(row_ids[index])
        body += row
    return table


def _row(cells: Sequence[str], *, literal_columns: Sequence[int]) -> nodes.row:
    row = nodes.row()
    for index, text in enumerate(cells):
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        paragraph += nodes.literal(text, text) if index in literal_columns else nodes.Text(text)
        entry += paragraph
        row += entry
    return row


class SettingsTable(SphinxDirective):
    """Every setting of hybiscus_webhooks.settings.DEFINITIONS: name, type, default and meaning."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        rows = docs_tables.settings_rows()
        # Each setting gets an anchor, e.g. configuration.html#setting-report-url.
        anchors = [nodes.make_id("setting-" + name) for name, *_ in rows]
        return [_table(("Setting", "Type", "Default", "Meaning"), rows, literal_columns=(0, 1, 2),
                       widths=(20, 14, 22, 44), row_ids=anchors)]


class ScheduleTable(SphinxDirective):
    """When each attempt of one delivery is made, from the delivery actor's own backoff function."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        return [_table(("Attempt", "Wait after the previous attempt", "Time after the first attempt"),
                       docs_tables.schedule_rows(), widths=(15, 40, 45))]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("hybiscus-settings", SettingsTable)
    app.add_directive("hybiscus-schedule", ScheduleTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
