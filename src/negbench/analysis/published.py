"""Published numbers for the report's published-numbers table: the shipped NegBench CSV plus the
model catalogue's extra rows, each row labelled with the negbench model string when known.

Rows have the CSV's keys (model, backbone, dataset, task, metric, value, source) plus
`negbench_model` ("" when the catalogue has no entry for that model). Always published numbers,
never measured ones.
"""
from __future__ import annotations

import csv
from pathlib import Path

from negbench.core.errors import ConfigError

PUBLISHED_CSV = Path(__file__).parent.parent / "data" / "published" / "negbench_published.csv"
ROW_KEYS = ("model", "backbone", "dataset", "task", "metric", "value", "source")


def published_rows(path: str | Path = PUBLISHED_CSV, catalog: str | Path | None = None) -> list[dict]:
    """CSV rows (in file order) then the catalogue's `published` rows not already in the CSV."""
    from negbench.models.catalog import CATALOG_FILE, load_catalog

    with open(path, newline="", encoding="utf-8") as f:
        rows = [dict(r) for r in csv.DictReader(f)]
    entries, extra = load_catalog(catalog or CATALOG_FILE)
    seen = {tuple(r[k] for k in ROW_KEYS[:5]) for r in rows}
    for i, rec in enumerate(extra):
        missing = [k for k in ROW_KEYS if k not in rec]
        if missing:
            raise ConfigError(f"{catalog or CATALOG_FILE}: published[{i}] lacks {missing}")
        key = tuple(str(rec[k]) for k in ROW_KEYS[:5])
        if key not in seen:
            rows.append({k: str(rec[k]) for k in ROW_KEYS})
            seen.add(key)
    strings = {e.published_as: e.model for e in entries if e.published_as}
    for r in rows:
        r["negbench_model"] = strings.get(r["model"], "")
    return rows


def rows_for(published_as: str, rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["model"] == published_as]
