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

from negbench.core.errors import ConfigError
from negbench.inputs.formats import media_path_problem, parse_caption_list
from negbench.inputs.records import AnnotatedSample
from negbench.inputs.sources import DropLog, SourceData, SourceError, parse_object_list
from negbench.inputs.vocab import load_vocab

PATH_COLS = ("filepath", "image_path", "image", "path", "file", "url", "video_id")
CAPTIONS_COLS = ("captions",)
CAPTION_COLS = ("caption", "text", "title", "alt_text", "sentence")

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


def iter_lists(path) -> tuple[list[str], Iterator[tuple[int, list]]]:
    """(header, iterator of (1-based row number, values)) for CSV/TSV or Parquet, streaming."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"corpus file not found: {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(path)
        header = list(pf.schema_arrow.names)

        def gen_pq():
            row = 0
            for batch in pf.iter_batches(batch_size=65536):
                cols = batch.to_pydict()
                for values in zip(*(cols[n] for n in header)):
                    row += 1
                    yield row, list(values)
        return header, gen_pq()
    delim = _delimiter(path)
    f = open(path, newline="", encoding="utf-8")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # corpus captions may be long; process-wide
    reader = csv.reader(f, delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL)
    first = next(reader, None)
    if first is None:
        f.close()
        return [], iter(())
    known = set(PATH_COLS + CAPTIONS_COLS + CAPTION_COLS + ("objects", "split"))
    has_header = any(c.strip().lower() in known for c in first)
    header = [c.strip() for c in first] if has_header else \
        ["filepath", "caption"] + [f"col{i}" for i in range(2, len(first))]   # header-less CC12M: path, caption

    def gen_csv():
        with f:
            row = 0
            if not has_header:
                row = 1
                yield 1, first
            for values in reader:
                row += 1
                if values:
                    yield row, values
    return header, gen_csv()


def columns_of(path) -> CorpusColumns:
    path = Path(path)
    header, rows = iter_lists(path)
    if not header:
        raise SourceError(path, None, None, "empty file")
    if hasattr(rows, "close"):
        rows.close()
    return CorpusColumns(path, header)


def iter_corpus(path, *, skip_invalid: bool = True, log: DropLog | None = None
                ) -> Iterator[tuple[int, str, list[str], list[str] | None]]:
    """Stream (row, media, captions, objects-or-None) without holding the file in memory."""
    path = Path(path)
    log = log or DropLog(skip_invalid)
    header, rows = iter_lists(path)
    if not header:
        return
    cols = CorpusColumns(path, header)
    ip = header.index(cols.path_col)
    ic = header.index(cols.caption_col) if cols.caption_col else None
    il = header.index(cols.captions_col) if cols.captions_col else None
    io = header.index(cols.objects_col) if cols.objects_col else None
    n = len(header)
    for row, values in rows:
        if len(values) < n:
            values = list(values) + [None] * (n - len(values))
        media = values[ip]
        media = "" if media is None else str(media).strip()
        if not media:
            log.bad(path, row, cols.path_col, "empty media path", "empty_media_path")
            continue
        if (problem := media_path_problem(media)) is not None:   # '../x': outside the media root
            log.bad(path, row, cols.path_col, problem, "path_leaves_root")
            continue
        if il is not None and values[il] not in (None, ""):
            cell = values[il]
            try:
                caps = [str(c) for c in cell] if isinstance(cell, (list, tuple)) else parse_caption_list(str(cell))
            except ValueError as exc:
                log.bad(path, row, cols.captions_col, str(exc), "bad_captions")
                continue
            caps = [" ".join(c.split()) for c in caps if c and c.strip()]
        else:
            cell = values[ic] if ic is not None else None
            caps = [" ".join(str(cell).split())] if cell not in (None, "") else []
            if caps and not caps[0]:
                caps = []
        if not caps:
            log.bad(path, row, cols.caption_col or cols.captions_col, "empty caption", "empty_caption")
            continue
        objs = None
        if io is not None and values[io] not in (None, ""):
            try:
                objs = parse_object_list(values[io])
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
