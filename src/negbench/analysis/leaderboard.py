"""Leaderboards from results JSON files: one row per model, one column per task.

The cell of a task is its headline metric: `accuracy` for MCQ kinds, `t2i_recall@5` for
retrieval (the paper's Retrieval-Neg figure), as a percentage.
"""
from __future__ import annotations

import csv
import glob
import io
from pathlib import Path
from typing import Iterable

from negbench.core.errors import ConfigError
from negbench.core.io import read_json, write_text_atomic

HEADLINE = {"mcq": "accuracy", "binary-mcq": "accuracy", "retrieval": "t2i_recall@5"}


def load_results(patterns: Iterable[str]) -> list[dict]:
    """Results JSONs from paths or glob patterns (** allowed); files that are not results are ignored."""
    files: list[str] = []
    for pat in patterns:
        matches = sorted(glob.glob(str(Path(pat).expanduser()), recursive=True)) or (
            [pat] if Path(pat).is_file() else [])
        if Path(pat).is_dir():
            matches = sorted(glob.glob(str(Path(pat) / "**" / "*.json"), recursive=True))
        files += [m for m in matches if m not in files]
    results = []
    for f in files:
        try:
            doc = read_json(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{f}: not a readable JSON file: {exc}") from None
        if isinstance(doc, dict) and "schema_version" in doc and "metrics" in doc and "task" in doc:
            results.append(doc)
    if not results:
        raise ConfigError(f"no results JSON files found in {list(patterns)}")
    return results


def leaderboard(results: list[dict], metric: str | None = None) -> tuple[list[str], list[list]]:
    """(header, rows): rows = [model, cell per task..., mean]; cells are percentages or None."""
    tasks: list[str] = []
    cells: dict[str, dict[str, float]] = {}
    for r in results:
        name, kind = r["task"]["name"], r["task"]["kind"]
        key = metric or HEADLINE.get(kind, "accuracy")
        if key not in r["metrics"]:
            continue
        if name not in tasks:
            tasks.append(name)
        cells.setdefault(r["model"], {})[name] = 100 * r["metrics"][key]["value"]
    header = ["model"] + tasks + ["mean"]
    rows = []
    for model in sorted(cells):
        vals = [cells[model].get(t) for t in tasks]
        present = [v for v in vals if v is not None]
        rows.append([model] + vals + [sum(present) / len(present) if present else None])
    return header, rows


def to_markdown(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([[("" if v is None else (round(v, 4) if isinstance(v, float) else v)) for v in row]
                 for row in rows])
    return buf.getvalue()


def write_leaderboard(patterns: Iterable[str], out: str | Path | None = "leaderboard",
                      metric: str | None = None) -> str:
    """Build the leaderboard; write OUT.md and OUT.csv (atomically) when out; return the markdown."""
    header, rows = leaderboard(load_results(patterns), metric)
    md = to_markdown(header, rows)
    if out:
        out = Path(out)
        write_text_atomic(out.with_name(out.name + ".md"), md)
        write_text_atomic(out.with_name(out.name + ".csv"), to_csv(header, rows))
    return md
