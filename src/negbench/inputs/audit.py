"""Audit of task rows a reviewer should look at before trusting a score (pure functions).

The published options are LLM paraphrases, and some carry the LLM's own voice
(`... traffic light." (this caption was fine and only minor adjustments were made)`); an
MCQ whose options repeat, or whose correct option equals a wrong one, cannot be answered.
Each finding is a record {row, column, reason, text}: counted by `negbench data check`,
stored in the results (`counts["suspicious"]`) and listed in a sidecar file; with
`--exclude-suspicious` the flagged rows are left out under a variant name of their own.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable, Sequence

# Parenthesised remarks about the caption itself, not about the scene ("(left)" stays fine).
_META_PAREN = re.compile(
    r"\([^)]*\b(caption|sentence|rephras\w*|paraphras\w*|adjust\w*|original|modif\w*|changes?|"
    r"grammar|wording|correct(ed|ion)?)\b[^)]*\)", re.IGNORECASE)
_NOTE = re.compile(r"\bnote\s*:", re.IGNORECASE)
# A quoted sentence followed by more text: the LLM closed its answer and kept talking.
_AFTER_QUOTE = re.compile(r"[.!?][\"\u201d]\s*\S")
# A later sentence talking about the caption ("... a dog. This caption was rephrased.").
_META_SENTENCE = re.compile(r"[.!?]\s+[^.!?]*\b(this caption|the caption|rephras\w*|paraphras\w*)\b",
                            re.IGNORECASE)
_PREAMBLE = re.compile(r"^\s*(here is|here's|sure[,!]|rephrased( caption)?\s*:|paraphrased( caption)?\s*:)",
                       re.IGNORECASE)


def commentary_reason(text: str) -> str | None:
    """Why `text` looks like it carries LLM commentary, or None."""
    if _META_PAREN.search(text):
        return "LLM commentary in parentheses"
    if _NOTE.search(text):
        return "LLM note ('Note:') in the option"
    if _PREAMBLE.search(text):
        return "LLM preamble before the caption"
    if _AFTER_QUOTE.search(text):
        return "text after the quoted sentence"
    if _META_SENTENCE.search(text):
        return "text about the caption after the sentence"
    return None


def _normal(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(" .")


def duplicate_reasons(captions: Sequence[str], correct: int | None) -> list[tuple[int, str]]:
    """(option index, reason) for options that repeat an earlier option of the same question
    (case, spacing and a trailing period ignored); a wrong option equal to the correct one
    is named as such, because such a question cannot be answered."""
    out = []
    norm = [_normal(c) for c in captions]
    for j in range(len(norm)):
        for i in range(j):
            if norm[i] != norm[j]:
                continue
            if correct is not None and correct in (i, j):
                wrong = j if correct == i else i
                out.append((wrong, f"correct option caption_{correct} identical to wrong option caption_{wrong}"))
            else:
                out.append((j, f"duplicate options caption_{i} and caption_{j}"))
            break
    return out


def audit_item(item) -> list[dict]:
    """Findings for one MCQItem (options: commentary, duplicates) or RetrievalItem (captions:
    commentary)."""
    found = []
    is_mcq = hasattr(item, "correct_answer")
    for j, text in enumerate(item.captions):
        reason = commentary_reason(text)
        if reason:
            found.append({"row": item.row, "column": f"caption_{j}" if is_mcq else "captions",
                          "reason": reason, "text": text})
    if is_mcq:
        for j, reason in duplicate_reasons(item.captions, item.correct_answer):
            found.append({"row": item.row, "column": f"caption_{j}", "reason": reason, "text": item.captions[j]})
    return found


def audit_items(items: Iterable) -> list[dict]:
    """All findings of a task's items, in row order."""
    return [rec for it in items for rec in audit_item(it)]


def suspicious_rows(findings: Iterable[dict]) -> int:
    """Number of distinct rows with at least one finding."""
    return len({rec["row"] for rec in findings})


SIDECAR_COLUMNS = ("row", "column", "reason", "text", "excluded")


def write_findings_csv(path, findings: Sequence[dict], excluded: Sequence[dict] = ()) -> Path:
    """The findings as a CSV a reviewer opens (row, column, reason, text, excluded), atomically."""
    from negbench.core.io import atomic_path

    left_out = {rec["row"] for rec in excluded}
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=SIDECAR_COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows({**{k: rec[k] for k in SIDECAR_COLUMNS[:4]}, "excluded": rec["row"] in left_out}
                        for rec in findings)
    return Path(path)
