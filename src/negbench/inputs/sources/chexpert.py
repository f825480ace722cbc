"""CheXpert reader: `train.csv` / `valid.csv` of CheXpert-v1.0(-small).

Label cells: 1.0 present, 0.0 absent, -1.0 uncertain, blank not mentioned. Only 1.0 and 0.0
are used; uncertain and blank findings are never asked about (they go to `uncertain`).
`Path` values are relative to the folder that holds `CheXpert-v1.0-small/`.
"""
from __future__ import annotations

from pathlib import Path

from negbench.core.errors import ConfigError
from negbench.inputs.formats import read_csv_rows
from negbench.inputs.records import AnnotatedSample
from negbench.inputs.sources import DropLog, SourceData, SourceError, find_first

META_COLUMNS = {"path", "sex", "age", "frontal/lateral", "ap/pa", "no finding"}
VALUES = {"1.0": 1, "1": 1, "0.0": 0, "0": 0, "-1.0": -1, "-1": -1, "": None}


def _row_media(csv_path, row: int, rec: dict, used: set, log: DropLog) -> str | None:
    """The row's image path, or None (reason logged): empty, extra fields, duplicate."""
    if None in rec:
        log.bad(csv_path, row, None, f"more fields than the header: extra {rec[None][:3]!r}", "extra_fields")
        return None
    media = (rec.get("Path") or "").strip()
    if not media:
        log.bad(csv_path, row, "Path", "empty path", "missing_media")
        return None
    if media in used:
        # a second label row for one image: which labels hold is unknowable
        log.bad(csv_path, row, "Path", f"duplicate image path {media!r}", "duplicate_id")
        return None
    used.add(media)
    return media


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
    cols, rows = read_csv_rows(csv_path)
    if "Path" not in cols:
        raise SourceError(csv_path, None, "Path", f"missing column 'Path'; found {cols}")
    findings = [c for c in cols if c.lower() not in META_COLUMNS]
    if not findings:
        raise SourceError(csv_path, None, None, "no finding columns (e.g. 'Cardiomegaly')")
    first = next((r["Path"].strip() for r in rows if r.get("Path")), "")
    root = next((base for base in (csv_path.parent.parent, csv_path.parent, csv_path.parent.parent.parent)
                 if first and (base / first).is_file()), csv_path.parent.parent)
    samples, used = [], set()
    for row, rec in enumerate(rows, start=1):
        media = _row_media(csv_path, row, rec, used, log)
        if media is None:
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
