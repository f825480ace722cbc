"""NegCap + NegMCQ fine-tuning data from any caption corpus (CC12M-style TSV/CSV/Parquet).

    from negbench.train.negdata import generate_negdata
    generate_negdata("world/corpus/corpus.tsv", "negdata/", vocab="world/vocab.txt",
                     template_sets=("no", "not"))      # hold out "without"/"contain" for testing

Two streaming passes in bounded memory: (1) co-occurrence statistics of the objects the
captions mention (cached under `{out}/.negdata/`), (2) generation. The corpus is cut into
chunks of `chunk_rows` rows; chunk c becomes `negcap/part-{c:05d}.parquet` and
`negmcq/part-{c:05d}.parquet`, drawn from a generator seeded by (seed, c) alone. So:
- `shard=(i, n)` processes the chunks with c % n == i, and the parts of all shards together
  are byte-identical to an unsharded run;
- a rerun skips chunks whose parts exist (files are written atomically), i.e. it resumes.

NegCap rows keep the original caption and add one verified-absent object (two for
`neither_nor`) with negation, affirmation first or negation first, in the wordings of
`template_sets`. NegMCQ rows hold 1 correct + 3 hard-negative captions (the authors'
fine-tuning generator: {A} in the hybrid pair, `modified_positive` for one-object images),
correct index shuffled, `caption_types` filled. Objects come from an `objects` column when
the corpus has one (then absence is verified by it), else from the captions (unverified
unless a verifier is given; counted in the manifest).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from bisect import bisect_right
from collections import Counter
from pathlib import Path
from typing import Sequence

from negbench import __version__
from negbench.concepts import Cooccurrence
from negbench.errors import ConfigError
from negbench.io import atomic_path, read_json, stable_hash, write_json_atomic
from negbench.templates import CORRECT_ROLES, mcq_templates, negation_templates, template_set_names
from negbench.vocab import load_vocab

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE_SETS = ("default", "no", "not")
NEGCAP_COLUMNS = ("filepath", "caption", "original_caption", "negated_objects", "template_set", "order")
NEGMCQ_COLUMNS = ("filepath", "caption_0", "caption_1", "caption_2", "caption_3", "correct_answer",
                  "correct_answer_template", "caption_types")


def _chunk_rng(seed: int, chunk: int) -> random.Random:
    d = hashlib.blake2b(f"negdata\x1f{seed}\x1f{chunk}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(d, "little"))


def _parse_shard(shard) -> tuple[int, int] | None:
    if shard is None or isinstance(shard, tuple):
        return shard
    from negbench.build import parse_shard
    return parse_shard(str(shard))


def _corpus_key(corpus: Path, vocab_names: Sequence[str]) -> str:
    st = corpus.stat()
    return stable_hash(str(corpus.resolve()), st.st_size, int(st.st_mtime), list(vocab_names))


def corpus_stats(corpus, vocab, cache_dir=None) -> Cooccurrence:
    """Pass 1: co-occurrence of the objects mentioned per caption (or listed in `objects`)."""
    from negbench.sources.generic import iter_corpus
    corpus = Path(corpus)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"stats-{_corpus_key(corpus, vocab.names)}.json"
        if cache.is_file():
            return Cooccurrence.from_dict(read_json(cache))
    stats = Cooccurrence(vocab.names)
    for _, _, caps, objs in iter_corpus(corpus, skip_invalid=True):
        if objs is not None:
            stats.add(o for o in (vocab.canonical(x) for x in objs) if o)
        else:
            stats.add(o for c in caps for o in vocab.extract(c)[0])
    if cache is not None:
        write_json_atomic(cache, stats.to_dict())
    return stats


_PERMS3 = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


class _Generator:
    """Per-row generation, written for speed: templates are pre-split into format strings,
    articles precomputed, random draws are plain `random()` calls (the same semantics as
    `negbench.templates.make_mcq` / `negate_caption`, which the tests check row by row)."""

    def __init__(self, stats: Cooccurrence, vocab, template_sets: Sequence[str], captions_per_image: int,
                 min_support: int, verifier=None, verifier_root=None):
        from negbench.templates import WRONG_ROLES
        from negbench.vocab import with_article
        self.stats, self.vocab, self.k = stats, vocab, captions_per_image
        self.neg_sets = [negation_templates(s) for s in template_sets]
        self.mcq_sets = [mcq_templates(s) for s in template_sets]
        self.min_support, self.verifier, self.verifier_root = min_support, verifier, verifier_root
        self.art = {n: with_article(n) for n in vocab.names}
        self.Art = {n: a[:1].upper() + a[1:] for n, a in self.art.items()}
        self.wrong = WRONG_ROLES
        # per MCQ set: role -> (format string, type); per negation set: (affneg, negaff, n_absent, name)
        self.mcq_fast = [({r: (t.text, t.type) for r, t in m.templates.items()}, m.needs_second_negative, m)
                         for m in self.mcq_sets]
        self.neg_fast = [(t.affneg, t.negaff, t.n_absent, t.name) for t in self.neg_sets]

    def propose(self, present, negated, rng_random, k):
        names, cum, _ = self.stats.candidates(present, negated, self.min_support, True)
        if len(names) <= k:
            return list(names)
        total = cum[-1]
        out = []
        for _ in range(8 * k):
            name = names[min(bisect_right(cum, rng_random() * total), len(names) - 1)]
            if name not in out:
                out.append(name)
                if len(out) == k:
                    break
        return out

    def row(self, rng: random.Random, media: str, caption: str, objs, drops: Counter, negcap: dict, negmcq: dict):
        if objs is not None:
            present = tuple(dict.fromkeys(o for o in (self.vocab.canonical(x) for x in objs) if o))
            negated: tuple = ()
        else:
            present, negated = self.vocab.extract(caption)
        if not present:
            drops["no_objects"] += 1
            return
        r = rng.random
        negs = self.propose(present, negated, r, max(self.k, 2))
        if self.verifier is not None and negs:
            from negbench.records import AnnotatedSample
            sample = AnnotatedSample(media, media, present, (caption,), objects_from_annotations=objs is not None)
            verdicts = self.verifier.verify(sample, negs, self.verifier_root)
            drops["negatives_failed_verification"] += sum(v is not True for v in verdicts)
            negs = [n for n, v in zip(negs, verdicts) if v is True]
        if not negs:
            drops["no_negative"] += 1
            return
        art, Art, nn = self.art, self.Art, len(negs)
        # ---- NegCap: up to k captions, each negating a different absent object where possible
        clause = caption.rstrip(" .!?;,")
        full = caption if caption[-1:] in ".!?" else clause + "."
        full = full[:1].upper() + full[1:]
        slots = {"caption": full, "clause": clause[:1].upper() + clause[1:],
                 "clause_lc": clause[:1].lower() + clause[1:], "media": "image"}
        sets, n_sets = self.neg_fast, len(self.neg_fast)
        offset = int(r() * n_sets)
        cap_f, orig_f, neg_f = negcap["caption"], negcap["original_caption"], negcap["negated_objects"]
        for i in range(min(self.k, nn)):
            affneg, negaff, n_absent, name = sets[(offset + i) % n_sets]
            if n_absent > nn:
                alt = next((t for t in sets if t[2] <= nn), None)
                if alt is None:
                    drops["negcap_needs_two_negatives"] += 1
                    continue
                affneg, negaff, n_absent, name = alt
            x = negs[i % nn]
            slots["x"], slots["a_x"], slots["A_x"] = x, art[x], Art[x]
            absent = [x]
            if n_absent > 1:
                y = negs[(i + 1) % nn]
                slots["y"], slots["a_y"] = y, art[y]
                absent.append(y)
            if r() < 0.5:
                order, text = "affneg", affneg.format_map(slots)
            else:
                order, text = "negaff", negaff.format_map(slots)
            negcap["filepath"].append(media)
            cap_f.append(text[:1].upper() + text[1:])
            orig_f.append(caption)
            neg_f.append(absent)
            negcap["template_set"].append(name)
            negcap["order"].append(order)
        # ---- NegMCQ: one question per image (fine-tuning generator: A in the hybrid pair)
        texts, needs2, mset = self.mcq_fast[int(r() * len(self.mcq_fast))]
        if needs2 and nn < 2:
            alt = next((m for m in self.mcq_fast if not m[1]), None)
            if alt is None:
                drops["negmcq_needs_two_negatives"] += 1
                return
            texts, needs2, mset = alt
        role = CORRECT_ROLES[int(r() * 3)]
        n_p = len(present)
        a = present[int(r() * n_p)]
        ms = {"media": "image", "a_media": "an image", "A": a, "a_A": art[a], "H": a, "a_H": art[a],
              "N": negs[0], "a_N": art[negs[0]]}
        if n_p >= 2:
            rest = [p for p in present if p != a]
            b = rest[int(r() * len(rest))]
            ms["B"], ms["a_B"] = b, art[b]
        elif role == "positive":
            role = "modified_positive"
        if nn > 1:
            ms["N2"], ms["a_N2"] = negs[1], art[negs[1]]
        correct = int(r() * 4)
        wrong = self.wrong
        perm = _PERMS3[int(r() * 6)]
        roles = [wrong[perm[0]], wrong[perm[1]], wrong[perm[2]]]
        roles.insert(correct, role)
        caps = []
        types = []
        for rl in roles:
            t, ty = texts[rl]
            t = t.format_map(ms)
            caps.append(t[:1].upper() + t[1:])
            types.append(ty)
        negmcq["filepath"].append(media)
        negmcq["caption_0"].append(caps[0])
        negmcq["caption_1"].append(caps[1])
        negmcq["caption_2"].append(caps[2])
        negmcq["caption_3"].append(caps[3])
        negmcq["correct_answer"].append(correct)
        negmcq["correct_answer_template"].append(role)
        negmcq["caption_types"].append(types)


def _write_parquet(path: Path, columns: dict, schema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    arrays = {}
    for k, v in columns.items():
        typ = schema.field(k).type
        if pa.types.is_list(typ):   # flat values + offsets: much faster than converting nested lists
            offsets = [0]
            flat: list = []
            for item in v:
                flat.extend(item)
                offsets.append(len(flat))
            arrays[k] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, typ.value_type))
        else:
            arrays[k] = pa.array(v, type=typ)
    table = pa.table(arrays, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="snappy")


def _schemas():
    import pyarrow as pa
    s = pa.string()
    negcap = pa.schema([("filepath", s), ("caption", s), ("original_caption", s),
                        ("negated_objects", pa.list_(s)), ("template_set", s), ("order", s)])
    negmcq = pa.schema([("filepath", s), ("caption_0", s), ("caption_1", s), ("caption_2", s), ("caption_3", s),
                        ("correct_answer", pa.int64()), ("correct_answer_template", s), ("caption_types", pa.list_(s))])
    return negcap, negmcq


def _paraphrase_negcap(llm, negcap: dict, drops: Counter) -> None:
    """Replace templated NegCap captions by validated LLM rewrites (template kept when invalid)."""
    from negbench.paraphrase import ParaphraseRequest
    reqs = [ParaphraseRequest(kind="negcap", text=c, original=o, absent=tuple(n), order=order)
            for c, o, n, order in zip(negcap["caption"], negcap["original_caption"], negcap["negated_objects"],
                                      negcap["order"])]
    out, stats = llm.paraphrase_many(reqs)
    negcap["caption"] = out
    for k, v in stats.items():
        drops[f"llm_{k}"] += v


def generate_negdata(corpus, out_dir, *, seed: int = 0, vocab=None, shard=None,
                     template_sets: Sequence[str] = DEFAULT_TEMPLATE_SETS, llm=None, captions_per_image: int = 3,
                     image_root=None, chunk_rows: int = 50_000, min_support: int = 1, verifier=None,
                     progress: bool = False) -> dict:
    """Write NegCap (`out/negcap/`) and NegMCQ (`out/negmcq/`) sharded Parquet; returns the manifest.

    corpus: TSV/CSV/Parquet with a path column and a caption column (optionally `objects`).
    vocab: a Vocabulary, a vocab file ("name, synonym, ..." lines), or None for COCO-80.
    shard: (i, n) or "i/n"; template_sets: names from `negbench.templates` (e.g. ("no", "not")).
    llm: a `negbench.paraphrase` backend (e.g. OpenAIParaphraser) to rewrite NegCap captions.
    image_root: folder the corpus paths are relative to (default: the corpus file's folder).
    """
    from negbench.sources import DropLog
    from negbench.sources.generic import iter_corpus
    corpus = Path(corpus).expanduser()
    if not corpus.is_file():
        raise ConfigError(f"corpus file not found: {corpus}")
    if captions_per_image < 1:
        raise ConfigError(f"captions_per_image must be >= 1, got {captions_per_image}")
    known = set(template_set_names("retrieval")) & set(template_set_names("mcq"))
    bad = [t for t in template_sets if t not in known]
    if bad or not template_sets:
        raise ConfigError(f"unknown template set(s) {bad}; available: {', '.join(sorted(known))}")
    shard_t = _parse_shard(shard)
    out = Path(out_dir).expanduser()
    image_root = Path(image_root).expanduser().resolve() if image_root else corpus.parent.resolve()
    vocab = load_vocab(vocab)
    work = out / ".negdata"
    (out / "negcap").mkdir(parents=True, exist_ok=True)
    (out / "negmcq").mkdir(parents=True, exist_ok=True)
    config = {"corpus": str(corpus.resolve()), "seed": seed, "template_sets": list(template_sets),
              "captions_per_image": captions_per_image, "chunk_rows": chunk_rows, "min_support": min_support,
              "vocab": list(vocab.names), "llm": llm.describe({}) if llm is not None else None,
              "verifier": getattr(verifier, "name", None)}
    config_key = stable_hash(config)
    cfg_file = work / "config.json"
    if cfg_file.is_file() and read_json(cfg_file).get("key") != config_key:
        raise ConfigError(f"{out} holds negdata made with other settings; use a new --out folder "
                          f"(found {read_json(cfg_file).get('config')})")
    write_json_atomic(cfg_file, {"key": config_key, "config": config})

    t0 = time.perf_counter()
    stats = corpus_stats(corpus, vocab, work)
    t_stats = time.perf_counter() - t0
    gen = _Generator(stats, vocab, template_sets, captions_per_image, min_support, verifier, image_root)
    negcap_schema, negmcq_schema = _schemas()

    def part_done(c: int) -> bool:
        return ((out / "negcap" / f"part-{c:05d}.parquet").is_file()
                and (out / "negmcq" / f"part-{c:05d}.parquet").is_file() and (work / f"part-{c:05d}.json").is_file())

    state = {"chunk": -1, "skip": False}
    negcap: dict = {}
    negmcq: dict = {}
    drops: Counter = Counter()
    rows_in = 0
    rng = None
    done_now = 0
    captions_now = 0
    droplog = DropLog(True)

    def flush():
        nonlocal done_now, captions_now
        c = state["chunk"]
        if c < 0 or state["skip"]:
            return
        if llm is not None and negcap["caption"]:
            _paraphrase_negcap(llm, negcap, drops)
        _write_parquet(out / "negcap" / f"part-{c:05d}.parquet", negcap, negcap_schema)
        _write_parquet(out / "negmcq" / f"part-{c:05d}.parquet", negmcq, negmcq_schema)
        all_drops = drops + droplog.drops
        write_json_atomic(work / f"part-{c:05d}.json", {"chunk": c, "rows_in": rows_in, "negcap": len(negcap["caption"]),
                                                        "negmcq": len(negmcq["caption_0"]), "drops": dict(all_drops)})
        done_now += 1
        captions_now += len(negcap["caption"])
        if progress:
            log.info("negdata: chunk %d done (%d NegCap, %d NegMCQ)", c, len(negcap["caption"]), len(negmcq["caption_0"]))

    t1 = time.perf_counter()
    row_fn = gen.row
    for row, media, caps, objs in iter_corpus(corpus, skip_invalid=True, log=droplog):
        c = (row - 1) // chunk_rows
        if c != state["chunk"]:
            flush()
            state["chunk"] = c
            state["skip"] = (shard_t is not None and c % shard_t[1] != shard_t[0]) or part_done(c)
            negcap = {k: [] for k in NEGCAP_COLUMNS}
            negmcq = {k: [] for k in NEGMCQ_COLUMNS}
            drops = Counter()
            droplog.drops = Counter()
            rows_in = 0
            rng = _chunk_rng(seed, c)
        if state["skip"]:
            continue
        for cap in caps:
            rows_in += 1
            row_fn(rng, media, cap, objs, drops, negcap, negmcq)
    flush()
    elapsed = time.perf_counter() - t1
    manifest = write_manifests(out, image_root, seed, template_sets, config)
    manifest["run"] = {"chunks_written": done_now, "negcap_captions": captions_now, "stats_s": round(t_stats, 3),
                       "generate_s": round(elapsed, 3)}
    return manifest


def write_manifests(out: Path, image_root: Path, seed: int, template_sets, config: dict) -> dict:
    """(Re)write negcap/manifest.json and negmcq/manifest.json from every finished part."""
    work = out / ".negdata"
    parts = sorted(work.glob("part-*.json"))
    counts = Counter()
    drops = Counter()
    shards = []
    for p in parts:
        d = read_json(p)
        counts["rows_in"] += d["rows_in"]
        counts["negcap"] += d["negcap"]
        counts["negmcq"] += d["negmcq"]
        drops.update(d["drops"])
        shards.append(p.stem + ".parquet")
    base = {"image_root": str(image_root), "seed": seed, "counts": dict(counts), "drops": dict(sorted(drops.items())),
            "shards": shards, "template_sets": list(template_sets), "negbench_version": __version__,
            "corpus": config["corpus"], "chunk_rows": config["chunk_rows"],
            "captions_per_image": config["captions_per_image"], "llm": config["llm"],
            "verified": "objects column or verifier" if config["verifier"] else
            "objects column only (caption-extracted rows are unverified)"}
    write_json_atomic(out / "negcap" / "manifest.json", {**base, "kind": "negcap"})
    write_json_atomic(out / "negmcq" / "manifest.json", {**base, "kind": "negmcq"})
    return base


def read_negdata(out_dir, kind: str = "negcap"):
    """All parts of one kind as a pandas DataFrame (for tests and small corpora)."""
    import pandas as pd
    parts = sorted((Path(out_dir) / kind).glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame(columns=list(NEGCAP_COLUMNS if kind == "negcap" else NEGMCQ_COLUMNS))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
