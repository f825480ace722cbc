"""MSR-VTT reader: `videodatainfo.json` ({"videos": [{video_id, split}], "sentences": [{video_id,
caption}]}) or a CSV with `video_id` and `captions` (a list) / `caption` (one per row).

Videos are looked up as `{video_id}.mp4` in `videos/`, `videos/all/`, `TestVideo/`,
`TrainValVideo/` or the root. MSR-VTT has no object labels: objects are extracted from the
captions with the vocabulary (built-in COCO-80 by default), and such samples are marked
`objects_from_annotations=False` so their negatives need a verifier. When the folder holds an
`objects.json` (video_id -> exhaustive object list; NegWorld writes one), those labels are used.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from negbench.core.errors import ConfigError
from negbench.inputs.formats import parse_caption_list
from negbench.inputs.records import AnnotatedSample
from negbench.inputs.sources import DropLog, SourceData, SourceError, find_first, parse_object_list
from negbench.inputs.vocab import load_vocab

VIDEO_DIRS = ("videos", "videos/all", "TestVideo", "TrainValVideo", ".")
SPLIT_ALIASES = {"val": "validate", "valid": "validate"}


def _read_json(path: Path, log: DropLog):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(path, None, None, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SourceError(path, None, None, "expected a JSON object at the top level")
    for k in ("videos", "sentences"):
        if k not in data:
            raise SourceError(path, None, k, f"missing top-level key '{k}'")
        if not isinstance(data[k], list):
            raise SourceError(path, None, k, f"'{k}' must be a list, got {type(data[k]).__name__}")
    splits, caps = {}, {}
    for i, v in enumerate(data["videos"]):
        if not isinstance(v, dict) or not isinstance(v.get("video_id"), str) or not v["video_id"].strip():
            log.bad(path, i, "videos.video_id", f"missing or non-string key 'video_id' in videos[{i}]",
                    "missing_key_video_id")
            continue
        if v["video_id"] in splits:
            log.bad(path, i, "videos.video_id", f"duplicate video id {v['video_id']!r}", "duplicate_video_id")
            continue
        splits[v["video_id"]] = str(v.get("split", ""))
        caps.setdefault(v["video_id"], [])
    for i, s in enumerate(data["sentences"]):
        if not isinstance(s, dict) or "video_id" not in s or "caption" not in s:
            missing = "video_id" if not isinstance(s, dict) or "video_id" not in s else "caption"
            log.bad(path, i, f"sentences.{missing}", f"missing key '{missing}' in sentences[{i}]",
                    f"missing_key_{missing}")
            continue
        if not isinstance(s["video_id"], str) or s["video_id"] not in caps:
            log.bad(path, i, "sentences.video_id", f"video id {s['video_id']!r} not in 'videos'",
                    "caption_unknown_video")
            continue
        caps[s["video_id"]].append(" ".join(str(s["caption"]).split()))
    return splits, caps


def _read_csv(path: Path, log: DropLog):
    splits, caps, objs = {}, {}, {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "video_id" not in cols or not ({"captions", "caption", "sentence"} & set(cols)):
            raise SourceError(path, None, "video_id", f"need columns video_id and captions/caption; found {cols}")
        for row, rec in enumerate(reader, start=1):
            vid = (rec.get("video_id") or "").strip()
            if not vid:
                log.bad(path, row, "video_id", "empty video_id", "missing_key_video_id")
                continue
            if rec.get("captions"):
                try:
                    items = parse_caption_list(rec["captions"])
                except ValueError as exc:
                    log.bad(path, row, "captions", str(exc), "bad_captions")
                    continue
            else:
                items = [rec.get("caption") or rec.get("sentence") or ""]
            caps.setdefault(vid, []).extend(" ".join(c.split()) for c in items if c.strip())
            splits.setdefault(vid, (rec.get("split") or "").strip())
            if rec.get("objects"):
                objs[vid] = parse_object_list(rec["objects"])
    return splits, caps, objs


def _read_objects(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "videos" in data:
        data = data["videos"]
    if isinstance(data, list):
        out = {}
        for i, rec in enumerate(data):
            if not isinstance(rec, dict) or "video_id" not in rec or "objects" not in rec:
                raise SourceError(path, i, "objects", "each entry needs 'video_id' and 'objects'")
            out[rec["video_id"]] = parse_object_list(rec["objects"])
        return out
    return {k: parse_object_list(v) for k, v in data.items()}


def read_msrvtt(src, *, split: str | None = "test", vocab=None, skip_invalid: bool = False,
                check_media: bool = True) -> SourceData:
    src = Path(src).expanduser()
    if src.is_dir():
        root = src
        info = find_first([src / "videodatainfo.json", src / "test_videodatainfo.json", src / "msrvtt.csv"])
        if info is None:
            raise ConfigError(f"{src}: no videodatainfo.json (or msrvtt.csv)")
    elif src.is_file():
        root, info = src.parent, src
    else:
        raise ConfigError(f"MSR-VTT source not found: {src}")
    log = DropLog(skip_invalid)
    objs: dict = {}
    if info.suffix == ".json":
        splits, caps = _read_json(info, log)
    else:
        splits, caps, objs = _read_csv(info, log)
    obj_file = root / "objects.json"
    if obj_file.is_file():
        objs = {**_read_objects(obj_file), **objs}
    want = _wanted_split(info, split, splits)
    user_vocab = vocab
    vocab = load_vocab(vocab)
    video_dir = next((root / d for d in VIDEO_DIRS if (root / d).is_dir()
                      and any((root / d).glob("*.mp4"))), root)
    samples, seen = [], set()
    for vid in sorted(caps, key=_natural):
        if want and splits.get(vid) != want:
            continue
        path = video_dir / (vid if Path(vid).suffix else f"{vid}.mp4")
        if check_media and not path.is_file():
            log.bad(info, None, "video_id", f"video file not found: {path}", "missing_media")
            continue
        if vid in objs:
            names = []
            for o in objs[vid]:
                canon = vocab.canonical(o) or o.strip().lower()
                if canon not in names:
                    names.append(canon)
            annotated = True
        else:
            names = []
            for c in caps[vid]:
                for o in vocab.extract(c)[0]:
                    if o not in names:
                        names.append(o)
            annotated = False
        seen.update(names)
        samples.append(AnnotatedSample(vid, str(path.relative_to(root)), tuple(sorted(names)), tuple(caps[vid]),
                                       splits.get(vid) or (split or ""), "msrvtt", "video",
                                       objects_from_annotations=annotated))
    # labels from objects.json are exhaustive over the dataset's own categories (and the user's
    # vocabulary, when given); caption extraction can only ever find vocabulary words
    cats = sorted(seen | set(vocab.names)) if (not objs or user_vocab is not None) else sorted(seen)
    return SourceData("msrvtt", "MSR-VTT", root, split or "all", samples, cats, "video", log.drops,
                      log.dropped, [str(info)] + ([str(obj_file)] if obj_file.is_file() else []), prefix="msr_vtt")


def _wanted_split(info: Path, split: str | None, splits: dict) -> str | None:
    """The split value to keep; None keeps every video (a file of one split without a split
    column). A split the file does not have is an error, never "everything"."""
    want = SPLIT_ALIASES.get(split, split) if split else None
    present = {v for v in splits.values() if v}
    if want and want not in present:
        if present:
            raise ConfigError(f"{info}: unknown split {split!r}; the file has {sorted(present)}")
        return None
    return want


def _natural(vid: str):
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", vid)]
