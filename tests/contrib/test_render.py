from __future__ import annotations

import io
from typing import Any

import pypdf
import pytest

from hybiscus_webhooks_contrib.report_server import UnrenderableReport, render_pdf


def text_of(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_title_byline_sections_text_tables_and_kpis_are_drawn() -> None:
    pdf = render_pdf({
        "type": "Report",
        "options": {"report_title": "Quarterly report", "report_byline": "Finance team"},
        "components": [
            {"type": "Section", "options": {"section_title": "Sales"}, "components": [
                {"type": "Text", "options": {"text": "Sales went up."}},
                {"type": "Row", "components": [
                    {"type": "KPI", "options": {"title": "Revenue", "value": 1200, "units": "EUR"}},
                ]},
                {"type": "Divider"},
                {"type": "Table", "options": {
                    "headings": ["Region", "Units"], "rows": [["North", 12], ["South", 7.5, "extra"]],
                }},
                {"type": "VerticalSpacer"},
            ]},
        ],
    })
    assert pdf.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert reader.metadata is not None and reader.metadata.title == "Quarterly report"
    text = text_of(pdf)
    for expected in ("Quarterly report", "Finance team", "Sales", "Sales went up.", "Revenue", "1200 EUR",
                     "Region", "North", "12", "7.5", "extra"):
        assert expected in text


def test_a_long_report_flows_onto_more_pages() -> None:
    lines = [{"type": "Text", "options": {"text": "line %d" % n}} for n in range(200)]
    pdf = render_pdf({"type": "Report", "components": lines})
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) > 1
    assert "line 199" in text_of(pdf)


def test_characters_outside_latin1_are_replaced_not_fatal() -> None:
    text = text_of(render_pdf({"type": "Report", "options": {"report_title": "Café ✓ 报告"}}))
    assert "Café ? ??" in text


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({"components": [{"type": "Text", "options": {"text": "ok"}}, {"type": "Hologram"}]},
         "Cannot render components[1]: unknown component type 'Hologram'"),
        ({"components": [{"type": "Section", "components": [{"type": ["Text"]}]}]},
         "Cannot render components[0].components[0]: unknown component type ['Text']"),
        ({"components": [{"options": {}}]}, "unknown component type None"),
        ({"components": "Text"}, "components must be a list"),
        ({"components": ["Text"]}, "components[0] must be an object"),
        ({"components": [{"type": "Text", "options": {}}]}, "components[0].options.text must be a string"),
        ({"components": [{"type": "Text", "options": "hi"}]}, "components[0].options must be an object"),
        ({"components": [{"type": "Table", "options": {"rows": [1, 2]}}]}, "rows, a list of lists"),
        ({"components": [{"type": "Table", "options": {"rows": [[{"a": 1}]]}}]}, "must be strings or numbers"),
        ({"options": {"report_title": 7}}, "options.report_title must be a string"),
        ([], "must be a JSON object"),
    ],
)
def test_what_cannot_be_drawn_is_refused_with_where_it_is(report: Any, message: str) -> None:
    if isinstance(report, dict):
        report = {"type": "Report", **report}
    with pytest.raises(UnrenderableReport) as caught:
        render_pdf(report)
    assert message in str(caught.value)


def test_nesting_is_bounded() -> None:
    component: dict[str, Any] = {"type": "Text", "options": {"text": "deep"}}
    for _ in range(40):
        component = {"type": "Section", "components": [component]}
    with pytest.raises(UnrenderableReport, match="nest deeper than"):
        render_pdf({"type": "Report", "components": [component]})
