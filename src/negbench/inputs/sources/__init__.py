"""Dataset readers: each turns one dataset format into `AnnotatedSample` records.

Readers are registered by name in `SOURCES` (lazily, as "module:attr") and share one
signature: `read(src, *, split=None, vocab=None, skip_invalid=False, check_media=True)
-> SourceData`. Everything downstream (concepts, templates, build) sees only SourceData,
never a dataset quirk. Bad input raises `SourceError` naming file, row and column; with
`skip_invalid` the sample is dropped and counted by reason instead.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from negbench.core.errors import TaskFileError
from negbench.inputs.formats import parse_caption_list
from negbench.inputs.records import AnnotatedSample
from negbench.core.registry import Registry


class SourceError(TaskFileError):
    """A bad record in a source dataset; names file, row (record index) and column (key)."""


@dataclass
class SourceData:
    name: str                         # reader name: coco | voc | msrvtt | chexpert | csv
    group: str                        # dataset family used in task/file names: COCO, VOC2007, MSR-VTT...
    root: Path                        # media paths of the samples are relative to this
    split: str
    samples: list[AnnotatedSample]
    categories: list[str]             # the category universe negatives are drawn from
    modality: str = "image"
    drops: Counter = field(default_factory=Counter)
    dropped: list[dict] = field(default_factory=list)   # {file,row,column,reason}, first 1000
    files: list[str] = field(default_factory=list)      # the files read (for manifests)
    prefix: str = ""                  # task file name prefix: COCO_val, VOC2007, msr_vtt, chexpert
    mcq_sets: dict | None = None      # requested MCQ template set -> the set used (None: same name)

    def summary(self) -> dict:
        return {"source": self.name, "group": self.group, "root": str(self.root), "split": self.split,
                "samples": len(self.samples), "categories": len(self.categories),
                "drops": dict(sorted(self.drops.items())), "files": self.files}


class DropLog:
    """Raise on bad input, or (skip_invalid) count it by reason and keep a sample of records."""

    def __init__(self, skip_invalid: bool, data: SourceData | None = None):
        self.skip_invalid = skip_invalid
        self.drops: Counter = Counter()
        self.dropped: list[dict] = []

    def bad(self, file, row, column, reason: str, key: str) -> None:
        err = SourceError(file, row, column, reason)
        if not self.skip_invalid:
            raise err
        self.drops[key] += 1
        if len(self.dropped) < 1000:
            self.dropped.append(err.as_record())

    def count(self, key: str, n: int = 1) -> None:
        self.drops[key] += n


def parse_object_list(cell) -> list[str]:
    """An `objects` cell as readers meet it: a list, a JSON / Python-literal list, or names
    separated by ';', '|' or ','."""
    if isinstance(cell, (list, tuple)):
        return [str(x) for x in cell]
    text = str(cell).strip()
    if text.startswith("["):
        return parse_caption_list(text)
    sep = ";" if ";" in text else "|" if "|" in text else ","
    return [t.strip() for t in text.split(sep) if t.strip()]


def find_first(candidates) -> Path | None:
    for c in candidates:
        if c is not None and Path(c).exists():
            return Path(c)
    return None


SOURCES: Registry = Registry.of("source", {
    "coco": "negbench.inputs.sources.coco:read_coco", "voc": "negbench.inputs.sources.voc:read_voc",
    "msrvtt": "negbench.inputs.sources.msrvtt:read_msrvtt", "chexpert": "negbench.inputs.sources.chexpert:read_chexpert",
    "csv": "negbench.inputs.sources.generic:read_generic"})


def read_source(name: str, src, **kwargs) -> SourceData:
    """Read dataset `src` with the registered reader `name` (see SOURCES.names())."""
    return SOURCES.get(name)(src, **kwargs)
