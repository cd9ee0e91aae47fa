"""How every benchmark prints its rows: one JSON object with ``--json``, else aligned ``name value`` lines."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["print_rows"]


def print_rows(rows: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for k, v in rows.items():
        print(f"{k:32s} {v}")
