"""The reports the demo sends: one that renders, one that cannot."""

from __future__ import annotations

from typing import Any


def quarterly_report(webhooks: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "type": "Report",
        "options": {"report_title": "Quarterly sales", "report_byline": "Made by the hybiscus-webhooks demo"},
        "config": {"webhooks": webhooks},
        "components": [
            {"type": "Section", "options": {"section_title": "Summary"}, "components": [
                {"type": "Text", "options": {"text": "Sales grew in every region this quarter."}},
                {"type": "Row", "components": [
                    {"type": "KPI", "options": {"title": "Revenue", "value": "1.2M", "units": "EUR"}},
                    {"type": "KPI", "options": {"title": "New customers", "value": 214}},
                ]},
            ]},
            {"type": "Section", "options": {"section_title": "By region"}, "components": [
                {"type": "Table", "options": {
                    "headings": ["Region", "Revenue (kEUR)", "Growth"],
                    "rows": [["North", 420, "+6%"], ["South", 380, "+4%"], ["West", 400, "+9%"]],
                }},
            ]},
        ],
    }


def unrenderable_report(webhooks: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "type": "Report",
        "options": {"report_title": "A report with a hologram"},
        "config": {"webhooks": webhooks},
        "components": [{"type": "Hologram", "options": {"text": "No PDF can show this."}}],
    }


def curl_report(webhook: dict[str, str]) -> dict[str, Any]:
    """What the printed curl line sends: small enough to edit by hand."""
    return {
        "type": "Report",
        "options": {"report_title": "My first report"},
        "config": {"webhooks": [webhook]},
        "components": [{"type": "Text", "options": {"text": "Hello from curl."}}],
    }
