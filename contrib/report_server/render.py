"""A Report definition to PDF bytes, with fpdf2.

fpdf2 is pure Python, maintained, and draws text, lines and tables with no system library;
reportlab would need its C extension and a larger API for the same result. Hybiscus has many
component types; this server renders the common ones and refuses the rest, which fails the task.
The built-in PDF fonts cover Latin-1 only: other characters are shown as '?'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

#: How deep Sections, Rows and Columns may nest.
MAX_DEPTH = 16


class UnrenderableReport(ValueError):
    """The report uses something this server cannot draw; retrying will not help."""


def render_pdf(report: Any) -> bytes:
    if not isinstance(report, Mapping):
        raise UnrenderableReport("The report must be a JSON object.")
    options = _options(report, "report")
    title = _text(options.get("report_title"), "options.report_title", default="Report")
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_creator("hybiscus-webhooks reference report server")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 22)
    pdf.multi_cell(0, 11, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    byline = _text(options.get("report_byline"), "options.report_byline", default="")
    if byline:
        pdf.set_font("Helvetica", "I", 12)
        pdf.multi_cell(0, 7, _latin1(byline), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _draw_children(pdf, report, "", depth=0)
    return bytes(pdf.output())


def _draw_children(pdf: FPDF, parent: Mapping[str, Any], path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise UnrenderableReport("Components nest deeper than %d levels at %s." % (MAX_DEPTH, path or "the top"))
    children = parent.get("components", [])
    if not isinstance(children, list):
        raise UnrenderableReport("%scomponents must be a list." % (path + "." if path else ""))
    for index, child in enumerate(children):
        where = "%scomponents[%d]" % (path + "." if path else "", index)
        if not isinstance(child, Mapping):
            raise UnrenderableReport("%s must be an object with a type." % where)
        kind = child.get("type")
        draw = _DRAWERS.get(kind) if isinstance(kind, str) else None
        if draw is None:
            raise UnrenderableReport(
                "Cannot render %s: unknown component type %r (this server renders %s)."
                % (where, kind, ", ".join(_DRAWERS))
            )
        draw(pdf, child, where, depth)


def _section(pdf: FPDF, component: Mapping[str, Any], path: str, depth: int) -> None:
    title = _text(_options(component, path).get("section_title"), path + ".options.section_title", default="")
    if title:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 8, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    _draw_children(pdf, component, path, depth + 1)


def _container(pdf: FPDF, component: Mapping[str, Any], path: str, depth: int) -> None:
    # Rows and Columns lay children side by side in Hybiscus; stacking them keeps every word.
    _draw_children(pdf, component, path, depth + 1)


def _text_component(pdf: FPDF, component: Mapping[str, Any], path: str, depth: int) -> None:
    text = _text(_options(component, path).get("text"), path + ".options.text")
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(0, 6, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _kpi(pdf: FPDF, component: Mapping[str, Any], path: str, depth: int) -> None:
    options = _options(component, path)
    title = _text(options.get("title"), path + ".options.title", default="")
    value = _cell(options.get("value"), path + ".options.value")
    units = _text(options.get("units"), path + ".options.units", default="")
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 9, _latin1(("%s %s" % (value, units)).strip()), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _table(pdf: FPDF, component: Mapping[str, Any], path: str, depth: int) -> None:
    options = _options(component, path)
    headings = options.get("headings") or []
    rows = options.get("rows")
    if not isinstance(headings, list) or not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise UnrenderableReport("%s.options needs rows, a list of lists, and optional headings, a list." % path)
    body = [[_cell(value, "%s.options.rows[%d]" % (path, number)) for value in row] for number, row in enumerate(rows)]
    table = ([[_cell(value, path + ".options.headings") for value in headings]] if headings else []) + body
    if not table:
        return
    width = max(len(row) for row in table)
    if width == 0:
        return
    pdf.set_font("Helvetica", "", 10)
    # fpdf2 wants every row as wide as the widest; short rows get empty cells.
    with pdf.table(first_row_as_headings=bool(headings), headings_style=FontFace(emphasis="BOLD")) as drawn:
        for row in table:
            cells = drawn.row()
            for value in row + [""] * (width - len(row)):
                cells.cell(_latin1(value))
    pdf.ln(3)


def _divider(pdf: FPDF, component: Mapping[str, Any], path: str, depth: int) -> None:
    pdf.ln(2)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(3)


def _spacer(pdf: FPDF, component: Mapping[str, Any], path: str, depth: int) -> None:
    pdf.ln(8)


_DRAWERS: dict[str, Callable[[FPDF, Mapping[str, Any], str, int], None]] = {
    "Section": _section,
    "Row": _container,
    "Column": _container,
    "Text": _text_component,
    "Table": _table,
    "KPI": _kpi,
    "Divider": _divider,
    "VerticalSpacer": _spacer,
}


def _options(component: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    options = component.get("options", {})
    if not isinstance(options, Mapping):
        raise UnrenderableReport("%s.options must be an object." % path)
    return options


def _text(value: Any, path: str, *, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise UnrenderableReport("%s must be a string." % path)
    return value


def _cell(value: Any, path: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise UnrenderableReport("%s: table cells and values must be strings or numbers." % path)


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")
