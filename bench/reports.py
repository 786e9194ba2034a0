"""Report definitions of a chosen size, with webhooks, as a customer would submit them."""

from __future__ import annotations

import json
from typing import Any

AUTH_HEADER = "tok_0123456789abcdef0123456789abcdef"


def report(size: int, *, webhooks: list[str] | None = None) -> dict[str, Any]:
    """A Report of about ``size`` bytes as JSON, listing ``webhooks`` (each with an auth header)."""
    hooks = [{"url": url, "auth_header": AUTH_HEADER} for url in (webhooks or [])]
    definition: dict[str, Any] = {
        "type": "Report",
        "options": {"report_title": "Quarterly sales", "report_byline": "Finance, EMEA"},
        "config": {"color_theme": "forest", "enable_multi_page": True, "webhooks": hooks},
        "components": [],
    }
    index = 0
    while len(json.dumps(definition)) < size:
        definition["components"].append({
            "type": "Section",
            "options": {"section_title": "Region %d" % index},
            "components": [
                {"type": "Text", "options": {"text": "Revenue grew in region %d by %d.%d%% quarter on quarter."
                                             % (index, index % 17, index % 10)}},
                {"type": "Table", "options": {"headings": ["Month", "Units", "Revenue"],
                                              "rows": [["M%d" % m, str(m * 31 + index), "%d.00" % (m * 997)]
                                                       for m in range(1, 4)]}},
            ],
        })
        index += 1
    return definition


def body(size: int, *, webhooks: list[str] | None = None) -> bytes:
    return json.dumps(report(size, webhooks=webhooks)).encode()


def hook_urls(count: int = 3) -> list[str]:
    return ["https://hooks%d.customer.example/reports?source=hybiscus" % index for index in range(count)]
