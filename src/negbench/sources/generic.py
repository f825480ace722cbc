"""Generic reader: CSV / TSV / Parquet with a media path, caption(s) and optional objects.

Columns (first match wins): path `filepath|image_path|image|path|file|url`; captions
`captions` (a JSON/Python-literal list) or `caption|text|title|alt_text` (one per row; rows
of the same path are grouped); optional `objects` (a list, or a `;`/`|`/`,`-separated
string: exhaustive labels, verified by annotation) and `split`. Without `objects`, objects are
extracted from captions with the vocabulary and need a verifier for absence.
A header-less TSV (CC12M's `url<TAB>caption`) is read as path, caption.

`iter_corpus` streams rows in bounded memory for corpus-scale jobs (negdata).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Iterator

from negbench.errors import ConfigError
from negbench.formats import parse_caption_list
from negbench.records import AnnotatedSample
from negbench.sources import DropLog, SourceData, SourceError
from negbench.sources.msrvtt import _parse_objects
from negbench.vocab import load_vocab

PATH_COLS = ("filepath", "image_path", "image", "path", "file", "url", "video_id")
CAPTIONS_COLS = ("captions",)
CAPTION_COLS = ("caption", "text", "title", "alt_text", "sentence")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _pick(cols, options):
    lower = {c.strip().lower(): c for c in cols}
    return next((lower[o] for o in options if o in lower), None)


class CorpusColumns:
    def __init__(self, path: Path, cols: list[str]):
        self.path_col = _pick(cols, PATH_COLS)
        self.captions_col = _pick(cols, CAPTIONS_COLS)
        self.caption_col = _pick(cols, CAPTION_COLS)
        self.objects_col = _pick(cols, ("objects",))
        self.split_col = _pick(cols, ("split",))
        if self.path_col is None:
            raise SourceError(path, None, "filepath", f"no media path column (one of {list(PATH_COLS)}); found {cols}")
        if self.captions_col is None and self.caption_col is None:
            raise SourceError(path, None, "caption",
                              f"no caption column (one of {list(CAPTIONS_COLS + CAPTION_COLS)}); found {cols}")


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def iter_rows(path) -> Iterator[tuple[int, dict]]:
    """(1-based row number, record dict) for CSV/TSV (with or without header) or Parquet."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"corpus file not found: {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(path)
        row = 0
        for batch in pf.iter_batches(batch_size=65536):
            cols = batch.to_pydict()
            names = list(cols)
            for values in zip(*(cols[n] for n in names)):
                row += 1
                yield row, dict(zip(names, values))
        return
    delim = _delimiter(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL)
        first = next(reader, None)
        if first is None:
            return
        known = set(PATH_COLS + CAPTIONS_COLS + CAPTION_COLS + ("objects", "split"))
        if any(c.strip().lower() in known for c in first):
            header = [c.strip() for c in first]
            row = 0
        else:   # header-less (CC12M): path, caption
            header = ["filepath", "caption"] + [f"col{i}" for i in range(2, len(first))]
            yield 1, dict(zip(header, first))
            row = 1
        for values in reader:
            row += 1
            if not values:
                continue
            yield row, dict(zip(header, values))


def columns_of(path) -> CorpusColumns:
    path = Path(path)
    for _, rec in iter_rows(path):
        return CorpusColumns(path, list(rec))
    raise SourceError(path, None, None, "empty file")


def iter_corpus(path, *, skip_invalid: bool = True, log: DropLog | None = None
                ) -> Iterator[tuple[int, str, list[str], list[str] | None]]:
    """Stream (row, media, captions, objects-or-None) without holding the file in memory."""
    path = Path(path)
    log = log or DropLog(skip_invalid)
    cols = None
    for row, rec in iter_rows(path):
        if cols is None:
            cols = CorpusColumns(path, list(rec))
        media = rec.get(cols.path_col)
        media = "" if media is None else str(media).strip()
        if not media:
            log.bad(path, row, cols.path_col, "empty media path", "empty_media_path")
            continue
        if cols.captions_col and rec.get(cols.captions_col) not in (None, ""):
            cell = rec[cols.captions_col]
            try:
                caps = [str(c) for c in cell] if isinstance(cell, (list, tuple)) else parse_caption_list(str(cell))
            except ValueError as exc:
                log.bad(path, row, cols.captions_col, str(exc), "bad_captions")
                continue
        else:
            cell = rec.get(cols.caption_col) if cols.caption_col else None
            caps = [str(cell)] if cell not in (None, "") else []
        caps = [" ".join(c.split()) for c in caps if c and c.strip()]
        if not caps:
            log.bad(path, row, cols.caption_col or cols.captions_col, "empty caption", "empty_caption")
            continue
        objs = None
        if cols.objects_col and rec.get(cols.objects_col) not in (None, ""):
            try:
                objs = _parse_objects(rec[cols.objects_col])
            except ValueError as exc:
                log.bad(path, row, cols.objects_col, str(exc), "bad_objects")
                continue
        yield row, media, caps, objs


def read_generic(src, *, split: str | None = None, vocab=None, skip_invalid: bool = False,
                 check_media: bool = True, image_root=None) -> SourceData:
    path = Path(src).expanduser()
    root = Path(image_root).expanduser() if image_root else path.parent
    log = DropLog(skip_invalid)
    user_vocab = vocab
    vocab = load_vocab(vocab)
    cols = columns_of(path)
    groups: dict[str, dict] = {}
    for row, media, caps, objs in iter_corpus(path, skip_invalid=skip_invalid, log=log):
        g = groups.setdefault(media, {"row": row, "captions": [], "objects": None, "split": ""})
        g["captions"].extend(caps)
        if objs is not None:
            names = []
            for o in objs:
                canon = vocab.canonical(o) if user_vocab is not None else (vocab.canonical(o) or o.strip().lower())
                if canon is None:
                    log.bad(path, row, cols.objects_col, f"unknown object {o!r}: not in the vocabulary",
                            "unknown_category")
                    names = None
                    break
                names.append(canon)
            if names is None:
                g["bad"] = True
                continue
            g["objects"] = sorted(set(names) | set(g["objects"] or []))
    samples, seen, annotated_any = [], set(), False
    for media, g in groups.items():
        if g.get("bad"):
            continue
        full = Path(media) if Path(media).is_absolute() else root / media
        if check_media and not full.is_file():
            log.bad(path, g["row"], cols.path_col, f"media file not found: {full}", "missing_media")
            continue
        if g["objects"] is not None:
            names, annotated = g["objects"], True
            annotated_any = True
        else:
            names = sorted({o for c in g["captions"] for o in vocab.extract(c)[0]})
            annotated = False
        seen.update(names)
        modality = "video" if full.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm") else "image"
        samples.append(AnnotatedSample(media, media, tuple(names), tuple(g["captions"]), split or "all",
                                       "csv", modality, objects_from_annotations=annotated))
    if split:
        pass  # a split column is informational; the file is the split
    cats = sorted(seen | set(vocab.names)) if (not annotated_any or user_vocab is not None) else sorted(seen)
    modality = samples[0].modality if samples else "image"
    return SourceData("csv", path.stem, root, split or "all", samples, cats, modality, log.drops, log.dropped,
                      [str(path)], prefix=path.stem)
