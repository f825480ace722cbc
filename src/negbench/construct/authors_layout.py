"""`negbench build --layout authors`: MCQ files exactly as the authors' benchmark generator
writes them, so their reference evaluator scores a new benchmark unchanged.

Their evaluator assumes the correct option at index 0 and knows no `modified_positive`
template; their generator skips images with fewer than two present objects and writes
options without a trailing period. negbench's default layout (correct index shuffled,
one-object images kept as `modified_positive`, `caption_types` column) stays as it is.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable, Sequence

from negbench.inputs.formats import MCQItem

LAYOUTS = ("negbench", "authors")


def _authors_option(text: str) -> str:
    return text.rstrip().rstrip(".")


def authors_item(item: MCQItem, row: int) -> MCQItem:
    """The question with its correct option first (wrong ones keep their order), no trailing
    periods and no caption_types."""
    order = [item.correct_answer] + [j for j in range(len(item.captions)) if j != item.correct_answer]
    return replace(item, row=row, captions=tuple(_authors_option(item.captions[j]) for j in order),
                   correct_answer=0, caption_types=None)


def to_authors_layout(items: Sequence[MCQItem], objects_per_media: dict[str, int],
                      drops: Counter | None = None) -> tuple[list[MCQItem], Counter]:
    """MCQ items -> the authors' layout; questions on images with < 2 present objects are
    dropped and counted as `fewer_than_two_objects` (per question) in the returned drops."""
    drops = Counter(drops or {})
    kept = []
    for it in items:
        if objects_per_media.get(it.media, 0) < 2:
            drops["fewer_than_two_objects"] += 1
            continue
        kept.append(authors_item(it, len(kept) + 1))
    return kept, drops


def objects_per_media(samples: Iterable) -> dict[str, int]:
    """media path -> number of present objects, from a source's AnnotatedSamples."""
    return {s.media: len(s.objects) for s in samples}
