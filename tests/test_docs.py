"""The README's settings table lists every setting."""

from __future__ import annotations

import re
from pathlib import Path

from hybiscus_webhooks.settings import DEFINITIONS

README = Path(__file__).parent.parent / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    listed = re.findall(r"^\| `([A-Z_]+)` \|", README.read_text(), flags=re.M)
    assert sorted(listed) == sorted(DEFINITIONS)
