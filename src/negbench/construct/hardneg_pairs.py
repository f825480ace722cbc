"""HardNeg-Syn pairs: what to generate, read from a pair list or from the published CSVs.

A pair is two generated images that differ in one object: the positive image shows `kept` and
`removed`, the negative image shows `kept` only. The authors published the CSVs of their pairs
(`synthetic_mcq*.csv`, `synthetic_retrieval_v1/v2.csv`) but not the images; their rows name an
image `.../positive/<id>_img.png` or `.../negative/<id>_img.png`, and their captions name the
objects ("This image features an armadillo, but not a cactus"). `read_release` reads the pair
ids, the image names and, through the regexes of `data/templates/hardneg_syn.json` ('recover'),
the two objects back; a `--pairs` file can supply the objects of pairs whose captions were
paraphrased beyond those regexes.
"""
from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Sequence

from negbench.core.errors import TaskFileError

ROLES = ("positive", "negative")
PAIR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# the image a published row names: <anything>/<positive|negative>/<id>[_img].<ext>
RELEASE_PATH = re.compile(r"(?:^|/)(positive|negative)/([^/]+?)(_img)?\.(png|jpe?g|webp)$", re.IGNORECASE)
PATH_COLUMNS = ("image_path", "filepath")


@dataclass(frozen=True)
class Pair:
    pair_id: str
    kept: str                 # in both images
    removed: str              # in the positive image only
    paths: tuple[str, str]    # (positive, negative) image paths relative to the output root


def default_paths(pair_id: str) -> tuple[str, str]:
    """Where a --pairs build puts a pair: the authors' naming, under images/synthetic/."""
    return tuple(f"images/synthetic/{role}/{pair_id}_img.png" for role in ROLES)


def _clean_object(text: str, file, row: int, column: str) -> str:
    name = " ".join(str(text or "").split()).strip().lower()
    if not name:
        raise TaskFileError(file, row, column, "empty object name")
    return name


def read_pairs(path) -> list[Pair]:
    """A pair list: CSV with columns `kept, removed` and optionally `pair_id` (default: the row
    number, 6 digits). TaskFileError names the file, row and column of a bad cell."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(path, None, None, "pair list not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("kept", "removed") if c not in header]
        if missing:
            raise TaskFileError(path, 0, missing[0], f"missing column; need kept, removed (and optionally pair_id); "
                                                     f"found {header}")
        pairs, seen = [], {}
        for row, rec in enumerate(reader, start=1):
            rec = {(k or "").strip(): v for k, v in rec.items()}
            pid = (rec.get("pair_id") or "").strip() or f"{row:06d}"
            if not PAIR_ID.fullmatch(pid):
                raise TaskFileError(path, row, "pair_id", f"{pid!r}: use letters, digits, '_', '.', '-' (a file name)")
            if pid in seen:
                raise TaskFileError(path, row, "pair_id", f"{pid!r} repeats row {seen[pid]}")
            seen[pid] = row
            kept = _clean_object(rec.get("kept"), path, row, "kept")
            removed = _clean_object(rec.get("removed"), path, row, "removed")
            if kept == removed:
                raise TaskFileError(path, row, "removed", f"same object as kept ({kept!r})")
            pairs.append(Pair(pid, kept, removed, default_paths(pid)))
    if not pairs:
        raise TaskFileError(path, None, None, "no pairs in the file")
    return pairs


# ---------------------------------------------------------------- the published CSVs

@lru_cache(maxsize=None)
def recover_patterns() -> dict[str, list[re.Pattern]]:
    """The 'recover' regexes of the template file, compiled: {'both': [...], 'without': [...]}."""
    from negbench.construct.templates import load_family
    rec = load_family("hardneg_syn")["recover"]
    slot = f"(?:{rec['article']})?(?P<{{name}}>{rec['object']})"
    out = {}
    for kind in ("both", "without"):
        out[kind] = [re.compile(r"\s*" + p.replace("{a}", slot.format(name="a")).replace("{b}", slot.format(name="b"))
                                + r"\s*[.!]?\s*", re.IGNORECASE) for p in rec[kind]]
    return out


def recover_objects(caption: str, kind: str) -> tuple[str, str] | None:
    """(a, b) named by a published caption of `kind` ('both' | 'without'), or None."""
    for pat in recover_patterns()[kind]:
        m = pat.fullmatch(caption.strip())
        if m:
            return " ".join(m["a"].lower().split()), " ".join(m["b"].lower().split())
    return None


def release_image_path(media: str) -> tuple[str, str, str] | None:
    """A published media path -> (role, pair_id, path relative to the output root), or None.

    The relative path keeps what follows the last `images/` folder (the authors' release puts
    every HardNeg-Syn file under images/), so `negbench data check` finds the image under the
    data root by the same suffix search that finds COCO's."""
    posix = media.strip().replace("\\", "/")
    m = RELEASE_PATH.search(posix)
    if not m:
        return None
    role, pid = m.group(1).lower(), m.group(2)
    parts = PurePosixPath(posix).parts
    tail = parts[len(parts) - 1 - parts[::-1].index("images") + 1:] if "images" in parts else parts[-2:]
    return role, pid, "images/" + "/".join(tail)


@dataclass
class ReleaseFile:
    """One published CSV, as read: header, raw rows, path column and each row's (role, pair)."""
    path: Path
    name: str
    header: list[str]
    rows: list[dict]
    path_column: str
    keys: list[tuple[str, str] | None] = field(default_factory=list)   # (role, pair_id) per row


def _row_captions(rec: dict) -> list[str]:
    """The captions a row claims are true of its image: the correct MCQ option or the
    retrieval captions (a JSON or Python-literal list; never eval'd)."""
    if "correct_answer" in rec and "caption_0" in rec:
        try:
            return [rec[f"caption_{int(float(rec['correct_answer']))}"]]
        except (ValueError, KeyError, TypeError):
            return []
    raw = rec.get("captions") or ""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(raw)
            return [str(c) for c in value] if isinstance(value, (list, tuple)) else [str(value)]
        except (ValueError, SyntaxError, TypeError):
            continue
    return [raw] if raw else []


@dataclass
class _Evidence:
    paths: dict = field(default_factory=dict)        # role -> relative path
    without: set = field(default_factory=set)       # {(kept, removed)} from negative captions
    both: set = field(default_factory=set)          # {frozenset(a, b)} from positive captions
    columns: set = field(default_factory=set)       # {(kept, removed)} from kept/removed columns


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        return header, [dict(r) for r in reader]


def read_release(files: Sequence[tuple[Path, str]], known: dict[str, Pair] | None = None,
                 *, skip_invalid: bool = False) -> tuple[list[ReleaseFile], list[Pair], dict]:
    """(file to read, its published name) -> the files, the pairs (first-seen order) and drops
    ({reason: n}) of pairs whose objects cannot be told. `known`: objects by pair id (--pairs),
    used first. A row whose path names no positive/negative image is an error (TaskFileError
    with file, row, column) unless skip_invalid, which counts it."""
    known = known or {}
    evidence: dict[str, _Evidence] = {}
    out_files, drops = [], {}
    for path, name in files:
        header, rows = _read_csv(path)
        col = next((c for c in PATH_COLUMNS if c in header), None)
        if col is None:
            raise TaskFileError(name, 0, None, f"missing column: need one of {list(PATH_COLUMNS)}; found {header}")
        rf = ReleaseFile(path, name, header, rows, col)
        for i, rec in enumerate(rows, start=1):
            hit = release_image_path(rec.get(col) or "")
            if hit is None:
                if not skip_invalid:
                    raise TaskFileError(name, i, col, f"{rec.get(col)!r} names no .../positive/ID_img.png or "
                                                      f".../negative/ID_img.png image (pass --skip-invalid to drop it)")
                drops["row_not_a_pair_image"] = drops.get("row_not_a_pair_image", 0) + 1
                rf.keys.append(None)
                continue
            role, pid, rel = hit
            rf.keys.append((role, pid))
            ev = evidence.setdefault(pid, _Evidence())
            ev.paths.setdefault(role, rel)
            if rec.get("kept") and rec.get("removed"):
                ev.columns.add((rec["kept"].strip().lower(), rec["removed"].strip().lower()))
            for cap in _row_captions(rec):
                if role == "negative" and (ab := recover_objects(cap, "without")):
                    ev.without.add(ab)
                elif role == "positive" and (ab := recover_objects(cap, "both")):
                    ev.both.add(frozenset(ab))
        out_files.append(rf)
    pairs = []
    for pid, ev in evidence.items():
        objects, reason = _objects(known.get(pid), ev)
        if objects is None:
            drops[reason] = drops.get(reason, 0) + 1
            continue
        paths = (ev.paths.get("positive") or _swap(ev.paths["negative"], "negative", "positive"),
                 ev.paths.get("negative") or _swap(ev.paths["positive"], "positive", "negative"))
        pairs.append(Pair(pid, objects[0], objects[1], paths))
    return out_files, pairs, drops


def _swap(rel: str, old: str, new: str) -> str:
    parts = list(PurePosixPath(rel).parts)
    i = len(parts) - 2          # the role folder is the image's parent
    parts[i] = new if parts[i].lower() == old else parts[i]
    return "/".join(parts)


def _objects(known: Pair | None, ev: _Evidence) -> tuple[tuple[str, str] | None, str]:
    """(kept, removed) of a pair and, when they cannot be told, the drop reason."""
    if known is not None:
        return (known.kept, known.removed), ""
    told = ev.columns or ev.without
    if len(told) > 1:
        return None, "objects_conflicting_in_release"
    if not told:
        return None, "objects_not_recovered" if not ev.both else "removed_object_not_recovered"
    kept, removed = next(iter(told))
    if ev.both and frozenset((kept, removed)) not in ev.both:
        return None, "objects_conflicting_in_release"
    return (kept, removed), ""
