"""CheXpert reader: `train.csv` / `valid.csv` of CheXpert-v1.0(-small).

Label cells: 1.0 present, 0.0 absent, -1.0 uncertain, blank not mentioned. Only 1.0 and 0.0
are used; uncertain and blank findings are never asked about (they go to `uncertain`).
`Path` values are relative to the folder that holds `CheXpert-v1.0-small/`.
"""
from __future__ import annotations

import csv
from pathlib import Path

from negbench.core.errors import ConfigError
from negbench.inputs.records import AnnotatedSample
from negbench.inputs.sources import DropLog, SourceData, SourceError, find_first

META_COLUMNS = {"path", "sex", "age", "frontal/lateral", "ap/pa", "no finding"}
VALUES = {"1.0": 1, "1": 1, "0.0": 0, "0": 0, "-1.0": -1, "-1": -1, "": None}


def read_chexpert(src, *, split: str | None = "valid", vocab=None, skip_invalid: bool = False,
                  check_media: bool = True) -> SourceData:
    src = Path(src).expanduser()
    split = split or "valid"
    if src.is_file():
        csv_path = src
        split = src.stem
    else:
        csv_path = find_first([src / "CheXpert-v1.0-small" / f"{split}.csv", src / "CheXpert-v1.0" / f"{split}.csv",
                               src / f"{split}.csv"])
        if csv_path is None:
            raise ConfigError(f"{src}: no {split}.csv (looked in CheXpert-v1.0-small/, CheXpert-v1.0/, .)")
    log = DropLog(skip_invalid)
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = cols
        if "Path" not in cols:
            raise SourceError(csv_path, None, "Path", f"missing column 'Path'; found {cols}")
        findings = [c for c in cols if c.lower() not in META_COLUMNS]
        if not findings:
            raise SourceError(csv_path, None, None, "no finding columns (e.g. 'Cardiomegaly')")
        rows = list(reader)
    first = next((r["Path"] for r in rows if r.get("Path")), "")
    root = next((base for base in (csv_path.parent.parent, csv_path.parent, csv_path.parent.parent.parent)
                 if first and (base / first).is_file()), csv_path.parent.parent)
    samples = []
    for row, rec in enumerate(rows, start=1):
        media = (rec.get("Path") or "").strip()
        if not media:
            log.bad(csv_path, row, "Path", "empty path", "missing_media")
            continue
        present, absent, uncertain, ok = [], [], [], True
        for col in findings:
            raw = (rec.get(col) or "").strip()
            if raw not in VALUES:
                log.bad(csv_path, row, col, f"label {raw!r} not one of 1.0, 0.0, -1.0 or blank", "bad_label")
                ok = False
                break
            value, name = VALUES[raw], col.lower()
            (present if value == 1 else absent if value == 0 else uncertain).append(name)
        if not ok:
            continue
        if check_media and not (root / media).is_file():
            log.bad(csv_path, row, "Path", f"image file not found: {root / media}", "missing_media")
            continue
        n_unc = sum((rec.get(c) or "").strip() in ("-1.0", "-1") for c in findings)
        if n_unc:
            log.count("uncertain_labels_not_used", n_unc)
        samples.append(AnnotatedSample(media, media, tuple(present), (), split, "chexpert", "image",
                                       absent=tuple(absent), uncertain=tuple(uncertain)))
    return SourceData("chexpert", "CheXpert", root, split, samples, [c.lower() for c in findings], "image",
                      log.drops, log.dropped, [str(csv_path)], prefix="chexpert",
                      mcq_sets={"default": "chexpert"})
