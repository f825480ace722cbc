"""A CC12M-style caption corpus: images plus one affirmative alt-text caption each.

No object labels are written anywhere under corpus/: like real web data, anything that
needs objects must get them from the captions.
"""
from __future__ import annotations

from pathlib import Path

from negbench.world._util import item_rng, jpeg_bytes, write_file
from negbench.world.captions import corpus_caption
from negbench.world.scenes import render_scene


def corpus_path(index: int) -> str:
    return f"images/{index:06d}.jpg"


def make_corpus(out: Path, seed: int, start: int, stop: int, res: int) -> list[tuple[str, str, dict]]:
    """Worker job: render corpus images [start, stop); return (filepath, caption, truth) rows,
    the truth (scene and objects) going to truth/corpus.json, never into corpus/."""
    root = Path(out) / "corpus"
    rows = []
    for i in range(start, stop):
        rng = item_rng(seed, "corpus", i)
        img, scene, objects = render_scene(res, rng)
        caption = corpus_caption(scene, objects, res, rng)
        rel = corpus_path(i)
        write_file(root / rel, jpeg_bytes(img))
        rows.append((rel, caption, {"scene": scene, "objects": [o.record() for o in objects]}))
    return rows


def corpus_tsv(rows: list[tuple[str, str, dict]]) -> str:
    lines = ["filepath\tcaption"]
    lines += [f"{p}\t{c}" for p, c, _ in rows]
    return "\n".join(lines) + "\n"
