"""Compact JSON text (no spaces), as the library writes it: bodies, records, sealed endpoints.

``json.dumps(value, separators=...)`` builds an encoder on every call, which cost more than
encoding a webhook's body; every attempt writes JSON twice (its body and its record).
"""

from __future__ import annotations

import json

#: ``dumps(value)`` is ``json.dumps(value, separators=(",", ":"))``, with one encoder for every call.
dumps = json.JSONEncoder(separators=(",", ":")).encode
