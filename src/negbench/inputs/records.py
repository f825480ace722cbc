"""The record every dataset reader produces. Downstream code sees only these."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnnotatedSample:
    """One image or video with what is known to be in it.

    objects:  canonical names of objects verified present (from annotations or extraction)
    absent:   objects verified absent, when the source says so explicitly (CheXpert 0.0);
              None means "anything not in `objects` or `uncertain` may be proposed as absent,
              subject to verification"
    uncertain: objects that are neither verified present nor absent (CheXpert -1.0 / blank,
              or detector scores near threshold); never used as negatives
    """
    sample_id: str
    media: str                      # path relative to the source root, or absolute
    objects: tuple[str, ...]
    captions: tuple[str, ...] = ()
    split: str = "test"
    source: str = ""
    modality: str = "image"         # image | video
    absent: tuple[str, ...] | None = None
    uncertain: tuple[str, ...] = ()
    objects_from_annotations: bool = True   # False when objects were extracted from captions
