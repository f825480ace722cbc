"""The comma-list convention of every command line and of the notebook API."""
from __future__ import annotations

from typing import Sequence


def split_list(values: str | Sequence[str] | None) -> list[str]:
    """'a,b' or ['a,b', 'c'] -> ['a', 'b', 'c'] (blanks dropped, order and duplicates kept once)."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out
