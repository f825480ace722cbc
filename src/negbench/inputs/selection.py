"""Text-to-image selection task files: one caption, K candidate images, one of them right.

This is the file kind `t2i-selection` (SPEC's text-to-image direction; no NegBench file has
this shape, so it lives beside formats.py instead of inside it). Columns:
    caption, image_paths, correct_answer
`image_paths` is a JSON list of K >= 2 media paths (relative to the data root, or absolute);
`correct_answer` is the 0-based index of the right image. Extra columns are ignored.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from negbench.core.errors import TaskFileError
from negbench.core.io import atomic_path, write_json_atomic
from negbench.inputs.kinds import get_kind

COLUMNS = get_kind("t2i-selection").columns


@dataclass(frozen=True)
class SelectionItem:
    row: int                      # 1-based data row (header is row 0)
    caption: str
    media: tuple[str, ...]        # candidate images as written in the file
    correct_answer: int


def _parse_row(path: Path, row: int, rec: dict) -> SelectionItem:
    caption = (rec.get("caption") or "").strip()
    if not caption:
        raise TaskFileError(path, row, "caption", "empty caption")
    raw = (rec.get("image_paths") or "").strip()
    try:
        media = json.loads(raw)
    except json.JSONDecodeError:
        raise TaskFileError(path, row, "image_paths", f"not a JSON list: {raw[:60]!r}") from None
    if not isinstance(media, list) or len(media) < 2 or not all(isinstance(m, str) and m.strip() for m in media):
        raise TaskFileError(path, row, "image_paths", f"need a list of >= 2 non-empty paths, got {raw[:60]!r}")
    answer = (rec.get("correct_answer") or "").strip()
    if not answer.isdigit() or int(answer) >= len(media):
        raise TaskFileError(path, row, "correct_answer",
                            f"{answer!r} is not an index in 0..{len(media) - 1}")
    return SelectionItem(row, caption, tuple(m.strip() for m in media), int(answer))


def read_selection_file(path, data_root=None, *, skip_invalid: bool = False, check_media: bool = True):
    """-> (items, skipped records, data_root). Checks that every candidate image exists
    (check_media=False: `negbench data check` / `tasks` count the missing ones instead)."""
    from negbench.inputs.formats import resolve_media

    path = Path(path)
    if not path.is_file():
        raise TaskFileError(path, None, None, "file does not exist")
    root = Path(data_root).expanduser() if data_root else path.parent
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise TaskFileError(path, None, missing[0], f"missing column '{missing[0]}'; found {header}")
        rows = list(reader)
    items, skipped = [], []
    for i, rec in enumerate(rows, start=1):
        try:
            item = _parse_row(path, i, rec)
            for m in item.media if check_media else ():
                if not resolve_media(m, root).is_file():
                    raise TaskFileError(path, i, "image_paths", f"media file not found: {resolve_media(m, root)}")
            items.append(item)
        except TaskFileError as err:
            if not skip_invalid:
                raise
            skipped.append(err.as_record())
    return items, skipped, root


def write_selection_file(path, items: Sequence[SelectionItem], manifest: dict | None = None) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS), lineterminator="\n")
            writer.writeheader()
            for it in items:
                writer.writerow({"caption": it.caption, "image_paths": json.dumps(list(it.media)),
                                 "correct_answer": it.correct_answer})
    if manifest is not None:
        write_json_atomic(path.with_name(path.name + ".manifest.json"), manifest)
    return path
