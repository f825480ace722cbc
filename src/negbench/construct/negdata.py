"""NegCap + NegMCQ fine-tuning data from any caption corpus (CC12M-style TSV/CSV/Parquet).

    from negbench.construct.negdata import generate_negdata
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

import dataclasses
import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from negbench import __version__
from negbench.construct.concepts import Cooccurrence
from negbench.core.errors import ConfigError
from negbench.core.io import atomic_path, read_json, stable_hash, write_json_atomic
from negbench.core.shards import parse_shard
from negbench.construct.templates import mcq_templates, negation_templates, template_set_names
from negbench.inputs.vocab import load_vocab

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE_SETS = ("default", "no", "not")
VERIFIED_OVERSAMPLE = 3   # candidates proposed per needed negative when a verifier checks them
NEGCAP_COLUMNS = ("filepath", "caption", "original_caption", "negated_objects", "template_set", "order")
NEGMCQ_COLUMNS = ("filepath", "caption_0", "caption_1", "caption_2", "caption_3", "correct_answer",
                  "correct_answer_template", "caption_types")


def _chunk_rng(seed: int, chunk: int):
    """numpy Generator seeded by (seed, chunk) alone, so a chunk's rows are the same in any shard."""
    import numpy as np
    d = hashlib.blake2b(f"negdata\x1f{seed}\x1f{chunk}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(d, "little"))


def _corpus_key(corpus: Path, vocab_names: Sequence[str]) -> str:
    st = corpus.stat()
    return stable_hash(str(corpus.resolve()), st.st_size, int(st.st_mtime), list(vocab_names))


def _count_cooccurrence(stats: Cooccurrence, flat: list, lengths: list) -> None:
    """Add rows of distinct object ids (flat + lengths) to `stats`, as `Cooccurrence.add` per row
    would, with numpy: every ordered pair (i, j), i != j, within a row counts once."""
    import numpy as np
    V = len(stats.names)
    stats.n_samples += len(lengths)
    if not flat:
        return
    ids = np.asarray(flat, np.int64)
    lens = np.asarray(lengths, np.int64)
    starts = np.cumsum(lens) - lens
    row_len = np.repeat(lens, lens)                  # per id: its row's length
    row_start = np.repeat(starts, lens)
    first = np.repeat(ids, row_len)
    block = np.cumsum(row_len) - row_len
    second = ids[np.repeat(row_start, row_len) + np.arange(len(first)) - np.repeat(block, row_len)]
    off = first != second
    pairs = np.bincount(first[off] * V + second[off], minlength=V * V).reshape(V, V)
    freq = np.bincount(ids, minlength=V)
    for i in np.flatnonzero(freq).tolist():
        stats.freq[i] += int(freq[i])
        row = stats.pairs[i]
        for j in np.flatnonzero(pairs[i]).tolist():
            row[j] += int(pairs[i, j])
    stats._cache.clear()


def corpus_stats(corpus, vocab, cache_dir=None, batch_rows: int = 200_000) -> Cooccurrence:
    """Pass 1: co-occurrence of the objects mentioned per caption (or listed in `objects`)."""
    from negbench.inputs.sources.generic import iter_corpus
    corpus = Path(corpus)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"stats-{_corpus_key(corpus, vocab.names)}.json"
        if cache.is_file():
            return Cooccurrence.from_dict(read_json(cache))
    stats = Cooccurrence(vocab.names)
    index, extract, canonical = stats.index, vocab.extract, vocab.canonical
    flat: list = []
    lengths: list = []
    for _, _, caps, objs in iter_corpus(corpus, skip_invalid=True):
        if objs is not None:        # one sample per corpus row
            found = [index[o] for o in dict.fromkeys(map(canonical, objs)) if o in index]
        elif len(caps) == 1:
            found = [index[o] for o in extract(caps[0])[0]]
        else:
            found = [index[o] for o in dict.fromkeys(o for c in caps for o in extract(c)[0])]
        flat.extend(found)
        lengths.append(len(found))
        if len(lengths) >= batch_rows:
            _count_cooccurrence(stats, flat, lengths)
            flat, lengths = [], []
    _count_cooccurrence(stats, flat, lengths)
    if cache is not None:
        write_json_atomic(cache, stats.to_dict())
    return stats


_PERMS3 = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
# MCQ role ids: the correct roles, modified_positive, then the wrong ones (WRONG_ROLES order)
_MCQ_ROLES = ("positive", "negative", "hybrid", "modified_positive", "wrong_hybrid", "wrong_positive",
              "wrong_negative")
_NEGCAP_SLOTS = ("caption", "clause", "clause_lc", "x", "a_x", "A_x", "y", "a_y")
_MCQ_SLOTS = ("A", "a_A", "B", "a_B", "H", "a_H", "N", "a_N", "N2", "a_N2")
_MEDIA = {"media": "image", "a_media": "an image"}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class _Template:
    """A template pre-split into literals and slots, rendered for many rows at once by Arrow's
    element-wise string join. The rendered text's first letter is upper-cased, as
    `negbench.construct.templates` does: in a leading literal at compile time, else by using the
    capitalised variant of the leading slot (slot name + "^")."""

    def __init__(self, text: str, slots: Sequence[str]):
        import string
        pieces: list = []
        for lit, field, spec, conv in string.Formatter().parse(text):
            if lit:
                pieces.append(lit)
            if field is None:
                continue
            if spec or conv:
                raise ConfigError(f"template {text!r}: slot {{{field}}} may not have a format spec or conversion")
            if field in _MEDIA:
                pieces.append(_MEDIA[field])
            elif field in slots:
                pieces.append(("slot", field))
            else:
                raise ConfigError(f"template {text!r}: unknown slot {{{field}}}; available: "
                                  f"{', '.join(sorted(set(slots) | set(_MEDIA)))}")
        merged: list = []
        for p in pieces:        # adjacent literals -> one
            if isinstance(p, str) and merged and isinstance(merged[-1], str):
                merged[-1] += p
            else:
                merged.append(p)
        if merged and isinstance(merged[0], str):
            merged[0] = _cap(merged[0])
        elif merged:
            merged[0] = ("slot", merged[0][1] + "^")
        self.pieces = merged

    def render(self, rows, slot_arrays):
        """rows: numpy indices; slot_arrays(name, rows) -> Arrow string array for those rows."""
        import pyarrow as pa
        import pyarrow.compute as pc
        args = [p if isinstance(p, str) else slot_arrays(p[1], rows) for p in self.pieces]
        if not any(not isinstance(a, str) for a in args):
            return pa.array(["".join(args)] * len(rows), pa.string())
        if len(args) == 1:
            return args[0]
        return pc.binary_join_element_wise(*args, "")


def _render_mixed(template_ids, templates, slot_arrays):
    """Row i rendered with templates[template_ids[i]], in row order."""
    import numpy as np
    import pyarrow as pa
    n = len(template_ids)
    if n == 0:
        return pa.array([], pa.string())
    parts, order = [], []
    for t in np.unique(template_ids):
        rows = np.flatnonzero(template_ids == t)
        parts.append(templates[t].render(rows, slot_arrays))
        order.append(rows)
    if len(parts) == 1:
        return parts[0]
    inv = np.empty(n, np.int64)
    inv[np.concatenate(order)] = np.arange(n)
    return pa.concat_arrays(parts).take(pa.array(inv))


class _Generator:
    """Chunk-at-a-time generation, written for speed: one Python pass per row extracts objects;
    everything after it is numpy/Arrow over the whole chunk.

    Negatives are drawn without replacement with probability proportional to co-occurrence
    weight (exponential race: the k smallest E_j / w_j, E_j ~ Exp(1), i.e. the same law as
    drawing one by one and rejecting repeats); all other choices (wording, order, MCQ roles and
    shuffle) are uniform draws from the chunk's generator. Same semantics as
    `negbench.construct.templates.make_mcq` / `negate_caption`, which the tests check row by row."""

    def __init__(self, stats: Cooccurrence, vocab, template_sets: Sequence[str], captions_per_image: int,
                 min_support: int, verifier=None, verifier_root=None):
        import numpy as np
        import pyarrow as pa
        from negbench.inputs.vocab import with_article
        self.stats, self.vocab, self.k = stats, vocab, captions_per_image
        self.kneg = max(captions_per_image, 2)
        # a verifier refuses some candidates: propose more, keep the first kneg it verifies
        self.kpropose = self.kneg * (VERIFIED_OVERSAMPLE if verifier is not None else 1)
        self.min_support, self.verifier, self.verifier_root = min_support, verifier, verifier_root
        names = list(stats.names)
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        art = [with_article(n) for n in names]
        self.vocab_arrays = {"name": pa.array(names, pa.string()), "name^": pa.array([_cap(n) for n in names]),
                             "art": pa.array(art, pa.string()), "art^": pa.array([_cap(a) for a in art])}
        self.pairs = np.asarray(stats.pairs, dtype=np.float64).reshape(len(names), len(names))
        self.freq = np.asarray(stats.freq, dtype=np.float64)
        # NegCap: template id = 2 * set + (0 affneg | 1 negaff)
        neg_sets = [negation_templates(s) for s in template_sets]
        self.neg_names = pa.array([t.name for t in neg_sets], pa.string())
        self.neg_templates = [_Template(text, _NEGCAP_SLOTS) for t in neg_sets for text in (t.affneg, t.negaff)]
        self.neg_n_absent = np.array([t.n_absent for t in neg_sets])
        # first set usable with nn negatives (-1: none), for nn = 0..kneg
        self.neg_alt = np.array([next((i for i, t in enumerate(neg_sets) if t.n_absent <= nn), -1)
                                 for nn in range(self.kneg + 1)])
        # NegMCQ: template id = 7 * set + role id
        mcq_sets = [mcq_templates(s) for s in template_sets]
        self.mcq_templates = [_Template(m.templates[r].text, _MCQ_SLOTS) for m in mcq_sets for r in _MCQ_ROLES]
        type_names = sorted({m.templates[r].type for m in mcq_sets for r in _MCQ_ROLES})
        self.type_names = pa.array(type_names, pa.string())
        self.mcq_types = np.array([[type_names.index(m.templates[r].type) for r in _MCQ_ROLES] for m in mcq_sets])
        self.mcq_needs2 = np.array([m.needs_second_negative for m in mcq_sets])
        self.mcq_alt = next((i for i, m in enumerate(mcq_sets) if not m.needs_second_negative), -1)
        self.role_names = pa.array(_MCQ_ROLES, pa.string())
        self.perms = np.array(_PERMS3) + 4      # wrong role ids

    # ---------------------------------------------------------------- objects
    def objects(self, captions: list, objs: list, drops: Counter):
        """Per row: present and negated vocabulary ids (flat + lengths); rows without objects dropped."""
        import numpy as np
        from itertools import chain, compress
        canonical = self.vocab.canonical
        if all(o is None for o in objs):       # the usual case (alt-text corpora): C-level loops
            found = list(map(self.vocab.extract, captions))
        else:
            found = [self.vocab.extract(c) if o is None else
                     (tuple(dict.fromkeys(x for x in map(canonical, o) if x)), ()) for c, o in zip(captions, objs)]
        present = [f[0] for f in found]
        pres_len = np.fromiter(map(len, present), np.int64, len(present))
        ok = pres_len > 0
        keep = np.flatnonzero(ok)
        drops["no_objects"] += len(captions) - len(keep)
        id_of = self.index.__getitem__
        pres = np.fromiter(map(id_of, chain.from_iterable(present)), np.int64)
        negated = [f[1] for f in compress(found, ok.tolist())]
        neg_len = np.fromiter(map(len, negated), np.int64, len(negated))
        neg = np.fromiter(map(id_of, chain.from_iterable(negated)), np.int64)
        return keep, pres, pres_len[ok], neg, neg_len

    # ---------------------------------------------------------------- negatives
    def propose(self, rng, pres, pres_len, neg, neg_len):
        """(n, kneg) candidate ids ordered by draw, and how many are valid per row."""
        import numpy as np
        n, V = len(pres_len), len(self.names)
        kk = min(self.kpropose, V)
        out = np.zeros((n, kk), np.int64)
        count = np.zeros(n, np.int64)
        if n == 0 or V == 0:
            return out, count
        pres_start = np.concatenate([[0], np.cumsum(pres_len)])
        neg_start = np.concatenate([[0], np.cumsum(neg_len)])
        pres_row = np.repeat(np.arange(n), pres_len)
        pres_pos = np.arange(len(pres)) - np.repeat(pres_start[:-1], pres_len)
        neg_row = np.repeat(np.arange(n), neg_len)
        floor = max(self.min_support, 1)
        batch = max(64, (1 << 20) // V)
        for b0 in range(0, n, batch):
            b1 = min(n, b0 + batch)
            p0, p1 = pres_start[b0], pres_start[b1]
            # weight of j = sum over the row's present objects i of pairs[i, j]: one gather per
            # object position (np.add.reduceat over rows is several times slower)
            padded = np.full((b1 - b0, int(pres_len[b0:b1].max())), -1, np.int64)
            padded[pres_row[p0:p1] - b0, pres_pos[p0:p1]] = pres[p0:p1]
            w = self.pairs[padded[:, 0]]
            for p in range(1, padded.shape[1]):
                sub = np.flatnonzero(padded[:, p] >= 0)
                w[sub] += self.pairs[padded[sub, p]]
            blocked = np.zeros((b1 - b0, V), bool)
            blocked[pres_row[p0:p1] - b0, pres[p0:p1]] = True
            q0, q1 = neg_start[b0], neg_start[b1]
            blocked[neg_row[q0:q1] - b0, neg[q0:q1]] = True
            w[blocked | (w < floor)] = 0.0
            nsup = np.count_nonzero(w, axis=1)
            fb = nsup == 0                        # nothing co-occurs: weight by overall frequency
            if fb.any():
                w[fb] = np.where(blocked[fb], 0.0, self.freq)
            e = rng.standard_exponential((b1 - b0, V))
            with np.errstate(divide="ignore", invalid="ignore"):
                keys = e / w                       # inf (or nan) where w == 0: never among the valid
            if kk < V:
                top = np.argpartition(keys, kk - 1, axis=1)[:, :kk]
                top = np.take_along_axis(top, np.argsort(np.take_along_axis(keys, top, 1), axis=1), 1)
            else:
                top = np.argsort(keys, axis=1)
            out[b0:b1] = top
            count[b0:b1] = np.minimum(np.count_nonzero(w, axis=1), kk)
        return out, count

    def verify(self, rows: tuple[list, list, list], found: tuple, negs, count, drops: Counter):
        """Keep only verified-absent negatives (a slow, per-row path: verifiers look at images).

        rows: the chunk's (media, captions, objects); found: what `objects` returned."""
        import numpy as np
        from negbench.inputs.records import AnnotatedSample
        media, captions, objs = rows
        keep, pres, pres_len = found[:3]
        starts = np.concatenate([[0], np.cumsum(pres_len)])
        names = self.names
        negs, count = negs.copy(), count.copy()
        samples, cands, rows_of = [], [], []
        for r, i in enumerate(keep.tolist()):
            cand = [names[j] for j in negs[r, :count[r]]]
            if not cand:
                continue
            present = tuple(names[j] for j in pres[starts[r]:starts[r + 1]])
            samples.append(AnnotatedSample(media[i], media[i], present, (captions[i],),
                                           objects_from_annotations=objs[i] is not None))
            cands.append(cand)
            rows_of.append(r)
        for r, cand, verdicts in zip(rows_of, cands, self.verifier.verify_many(samples, cands, self.verifier_root)):
            drops["negatives_failed_verification"] += sum(v is not True for v in verdicts)
            ok = [self.index[c] for c, v in zip(cand, verdicts) if v is True]
            negs[r, :len(ok)] = ok
            count[r] = len(ok)
        return negs[:, :self.kneg], np.minimum(count, self.kneg)

    # ---------------------------------------------------------------- one chunk
    def chunk(self, rng, media: list, captions: list, objs: list, drops: Counter) -> tuple[dict, dict]:
        """NegCap and NegMCQ columns (Arrow arrays) for one chunk of corpus rows."""
        import numpy as np
        found = self.objects(captions, objs, drops)
        negs, count = self.propose(rng, *found[1:])
        if self.verifier is not None and len(found[0]):
            negs, count = self.verify((media, captions, objs), found, negs, count, drops)
        ok = count > 0
        drops["no_negative"] += int(np.count_nonzero(~ok))
        kept = _Kept(self, media, captions, found, negs, count, ok)
        u = rng.random((kept.n, 7 + self.k))   # one draw per row for every choice below
        return self._negcap(kept, u, drops), self._negmcq(kept, u, drops)

    def _negcap(self, kept: "_Kept", u, drops: Counter) -> dict:
        """Up to k captions per row, each negating a different absent object."""
        import numpy as np
        import pyarrow as pa
        negs, count = kept.negs, kept.count
        k, n_sets = self.k, len(self.neg_n_absent)
        j = np.arange(k)
        valid = j[None, :] < np.minimum(count, k)[:, None]
        sets = ((u[:, 0] * n_sets).astype(np.int64)[:, None] + j[None, :]) % n_sets
        too_few = self.neg_n_absent[sets] > count[:, None]
        sets = np.where(too_few, self.neg_alt[count][:, None], sets)
        drops["negcap_needs_two_negatives"] += int(np.count_nonzero(valid & (sets < 0)))
        valid &= sets >= 0
        row, jj = np.nonzero(valid)                      # row-major: the rows' order, then j
        cset = sets[row, jj]
        x = negs[row, jj]
        y = negs[row, (jj + 1) % count[row]]
        two = self.neg_n_absent[cset] > 1
        order = (u[:, 7:7 + k][row, jj] >= 0.5).astype(np.int64)      # 0 affneg, 1 negaff
        vocab_slot = {"x": ("name", x), "a_x": ("art", x), "A_x": ("art^", x), "y": ("name", y), "a_y": ("art", y)}

        def negcap_slot(name, rows):
            base = name.rstrip("^")
            if base in vocab_slot:
                kind, ids = vocab_slot[base]
                if name.endswith("^") and not kind.endswith("^"):
                    kind += "^"
                return self.vocab_arrays[kind].take(pa.array(ids[rows]))
            return kept.row_strings.get(name).take(pa.array(row[rows]))

        return {
            "filepath": kept.media.take(pa.array(row)),
            "caption": _render_mixed(cset * 2 + order, self.neg_templates, negcap_slot),
            "original_caption": kept.captions.take(pa.array(row)),
            "negated_objects": self._names_lists(np.stack([x, y], 1), np.where(two, 2, 1)),
            "template_set": self.neg_names.take(pa.array(cset)),
            "order": pa.array(["affneg", "negaff"], pa.string()).take(pa.array(order)),
        }

    def _negmcq(self, kept: "_Kept", u, drops: Counter) -> dict:
        """One question per row (the fine-tuning generator: A in the hybrid pair)."""
        import numpy as np
        import pyarrow as pa
        mset = (u[:, 1] * len(self.mcq_needs2)).astype(np.int64)
        mset[self.mcq_needs2[mset] & (kept.count < 2)] = self.mcq_alt
        mq = mset >= 0
        drops["negmcq_needs_two_negatives"] += int(np.count_nonzero(~mq))
        role, a, b = self._mcq_objects(kept, u)
        correct = (u[:, 5] * 4).astype(np.int64)
        wrong = self.perms[(u[:, 6] * 6).astype(np.int64)]          # (n, 3)
        roles = np.empty((kept.n, 4), np.int64)
        rows_n = np.arange(kept.n)
        for p in range(4):
            roles[:, p] = np.where(p == correct, role, wrong[rows_n, np.minimum(p - (p > correct), 2)])
        sel = np.flatnonzero(mq)
        mset, roles, a, b, correct, role = mset[sel], roles[sel], a[sel], b[sel], correct[sel], role[sel]
        n1 = kept.negs[sel, 0]
        n2 = kept.negs[sel, 1] if kept.negs.shape[1] > 1 else n1
        ids = {"A": a, "B": b, "H": a, "N": n1, "N2": n2}

        def mcq_slot(name, rows):
            cap = name.endswith("^")
            base = name.rstrip("^")
            kind = "art" if base.startswith("a_") else "name"
            return self.vocab_arrays[kind + ("^" if cap else "")].take(pa.array(ids[base.removeprefix("a_")][rows]))

        negmcq = {"filepath": kept.media.take(pa.array(sel))}
        for p in range(4):
            negmcq[f"caption_{p}"] = _render_mixed(mset * 7 + roles[:, p], self.mcq_templates, mcq_slot)
        negmcq["correct_answer"] = pa.array(correct, pa.int64())
        negmcq["correct_answer_template"] = self.role_names.take(pa.array(role))
        types = self.mcq_types[mset[:, None], roles]
        negmcq["caption_types"] = pa.ListArray.from_arrays(pa.array(np.arange(0, 4 * len(sel) + 1, 4, dtype=np.int32)),
                                                           self.type_names.take(pa.array(types.ravel())))
        return negmcq

    @staticmethod
    def _mcq_objects(kept: "_Kept", u):
        """The correct option's role and the two present objects A, B of each row's question;
        a one-object image asks `modified_positive` instead of `positive`."""
        import numpy as np
        pres_len = kept.pres_len
        role = (u[:, 2] * 3).astype(np.int64)
        ai = (u[:, 3] * pres_len).astype(np.int64)
        bi = (u[:, 4] * np.maximum(pres_len - 1, 1)).astype(np.int64)
        bi = np.where(bi >= ai, bi + 1, bi)
        one = pres_len < 2
        bi = np.where(one, ai, bi)
        role = np.where(one & (role == 0), 3, role)
        return role, kept.pres[kept.pres_start + ai], kept.pres[kept.pres_start + bi]

    def _names_lists(self, ids, lengths):
        """list<string> column: row i holds the names of ids[i, :lengths[i]]."""
        import numpy as np
        import pyarrow as pa
        flat = ids[np.arange(ids.shape[1])[None, :] < lengths[:, None]]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), self.vocab_arrays["name"].take(pa.array(flat)))


class _Kept:
    """The rows of a chunk that got at least one negative, as the generators need them."""

    def __init__(self, gen: _Generator, media: list, captions: list, found: tuple, negs, count, ok):
        import numpy as np
        import pyarrow as pa
        keep, pres, pres_len = found[:3]
        self.pres = pres                                                 # flat, all rows
        self.pres_start = np.concatenate([[0], np.cumsum(pres_len)[:-1]])[ok]
        self.keep, self.negs, self.count, self.pres_len = keep[ok], negs[ok], count[ok], pres_len[ok]
        self.n = len(self.keep)
        self.captions = pa.array(captions, pa.string()).take(pa.array(self.keep))
        self.row_strings = _RowStrings(self.captions)
        self.media = pa.array(media, pa.string()).take(pa.array(self.keep))


def _first_letter(arr, upper: bool):
    """s[:1].upper() + s[1:] (or .lower()) for each string, exactly as Python does it: Arrow's
    ASCII case mapping where the first character is ASCII, Python for the rest."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    if len(arr) == 0:
        return arr
    first = pc.utf8_slice_codeunits(arr, 0, 1)
    rest = pc.utf8_slice_codeunits(arr, 1, 2**31 - 1)
    out = pc.binary_join_element_wise(pc.ascii_upper(first) if upper else pc.ascii_lower(first), rest, "")
    other = pc.invert(pc.string_is_ascii(first))
    if pc.any(other).as_py():
        idx = np.flatnonzero(other.to_numpy(zero_copy_only=False))
        fixed = [(s[:1].upper() if upper else s[:1].lower()) + s[1:] for s in arr.take(pa.array(idx)).to_pylist()]
        mask = np.zeros(len(arr), bool)
        mask[idx] = True
        out = pc.replace_with_mask(out, pa.array(mask), pa.array(fixed, pa.string()))
    return out


class _RowStrings:
    """The caption-derived NegCap slots of each row, computed on first use (Arrow, vectorised):
    {caption} ends in punctuation, {clause} without it, {clause_lc} lower-case first; both
    capitalised except clause_lc (whose "^" variant, for a leading slot, is capitalised)."""

    def __init__(self, captions):
        self.captions = captions
        self.cache: dict = {}

    def get(self, name: str):
        if name not in self.cache:
            self.cache[name] = self._make(name)
        return self.cache[name]

    def _make(self, name: str):
        import pyarrow.compute as pc
        if name in ("clause", "clause^"):
            return _first_letter(self.get("raw_clause"), True)
        if name == "clause_lc^":
            return _first_letter(self.get("clause_lc"), True)
        if name == "raw_clause":
            return pc.utf8_rtrim(self.captions, characters=" .!?;,")
        if name == "clause_lc":
            return _first_letter(self.get("raw_clause"), False)
        if name in ("caption", "caption^"):
            ends = pc.match_substring_regex(self.captions, r"[.!?]$")
            full = pc.if_else(ends, self.captions, pc.binary_join_element_wise(self.get("raw_clause"), ".", ""))
            return _first_letter(full, True)
        raise KeyError(name)


# low-cardinality columns: dictionary pages pay off; for the caption columns (mostly unique)
# trying a dictionary first and falling back costs time for nothing
_DICT_COLUMNS = ["filepath", "original_caption", "negated_objects", "template_set", "order",
                 "correct_answer_template", "caption_types"]


def _write_parquet(path: Path, columns: dict, schema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.table({k: columns[k] for k in schema.names}, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="snappy",
                       use_dictionary=[c for c in _DICT_COLUMNS if c in schema.names])


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
    import pyarrow as pa
    from negbench.construct.paraphrase import ParaphraseRequest
    cols = {k: negcap[k].to_pylist() for k in ("caption", "original_caption", "negated_objects", "order")}
    reqs = [ParaphraseRequest(kind="negcap", text=c, original=o, absent=tuple(n), order=order)
            for c, o, n, order in zip(cols["caption"], cols["original_caption"], cols["negated_objects"],
                                      cols["order"])]
    out, stats = llm.paraphrase_many(reqs)
    negcap["caption"] = pa.array(out, pa.string())
    for k, v in stats.items():
        drops[f"llm_{k}"] += v


@dataclass(kw_only=True, frozen=True)
class NegdataConfig:
    """How to make NegCap + NegMCQ from a corpus (the `generate_negdata` options)."""
    seed: int = 0
    vocab: Any = None                   # a Vocabulary, a vocab file ("name, synonym, ..." lines) or None: COCO-80
    shard: tuple[int, int] | str | None = None   # (i, n) or "i/n": the chunks c with c % n == i
    template_sets: tuple[str, ...] = DEFAULT_TEMPLATE_SETS   # names from negbench.construct.templates
    captions_per_image: int = 3
    image_root: str | Path | None = None    # folder the corpus paths are relative to (default: its folder)
    chunk_rows: int = 50_000
    min_support: int = 1
    max_rows: int | None = None         # only the first N corpus rows (co-occurrence stats still see all)
    progress: bool = False

    def __post_init__(self):
        object.__setattr__(self, "template_sets", tuple(self.template_sets))
        object.__setattr__(self, "shard", parse_shard(self.shard))
        if self.captions_per_image < 1:
            raise ConfigError(f"captions_per_image must be >= 1, got {self.captions_per_image}")
        known = set(template_set_names("retrieval")) & set(template_set_names("mcq"))
        bad = [t for t in self.template_sets if t not in known]
        if bad or not self.template_sets:
            raise ConfigError(f"unknown template set(s) {bad}; available: {', '.join(sorted(known))}")

    def wants(self, chunk: int) -> bool:
        return self.shard is None or chunk % self.shard[1] == self.shard[0]


def generate_negdata(corpus, out_dir, config: NegdataConfig | None = None, *, llm=None, verifier=None,
                     **options) -> dict:
    """Write NegCap (`out/negcap/`) and NegMCQ (`out/negmcq/`) sharded Parquet; returns the manifest.

    corpus: TSV/CSV/Parquet with a path column and a caption column (optionally `objects`).
    config (default NegdataConfig()): the options; `options` are NegdataConfig fields overriding it.
    llm: a `negbench.construct.paraphrase` backend (e.g. OpenAIParaphraser) to rewrite NegCap captions.
    verifier: checks each negative against the image (see negbench.construct.concepts.make_verifier).
    """
    cfg = dataclasses.replace(config or NegdataConfig(), **options)
    corpus = Path(corpus).expanduser()
    if not corpus.is_file():
        raise ConfigError(f"corpus file not found: {corpus}")
    out = Path(out_dir).expanduser()
    image_root = Path(cfg.image_root).expanduser().resolve() if cfg.image_root else corpus.parent.resolve()
    vocab = load_vocab(cfg.vocab)
    check_corpus(corpus)  # before anything is written under out
    settings = _claim_out_dir(out, corpus, cfg, vocab, llm, verifier)
    t0 = time.perf_counter()
    stats = corpus_stats(corpus, vocab, out / ".negdata")
    t_stats = time.perf_counter() - t0
    gen = _Generator(stats, vocab, cfg.template_sets, cfg.captions_per_image, cfg.min_support, verifier, image_root)
    writer = _PartWriter(out, gen, cfg, llm)
    t1 = time.perf_counter()
    for chunk, rows, source_drops in _corpus_chunks(corpus, cfg.chunk_rows, writer.wanted, cfg.max_rows):
        writer.write(chunk, rows, source_drops)
    elapsed = time.perf_counter() - t1
    manifest = write_manifests(out, image_root, cfg.seed, cfg.template_sets, settings)
    manifest["run"] = {"chunks_written": writer.chunks_written, "negcap_captions": writer.captions_written,
                       "stats_s": round(t_stats, 3), "generate_s": round(elapsed, 3)}
    return manifest


def check_corpus(corpus: Path) -> None:
    """ConfigError naming the corpus when it is not UTF-8 text (the line and byte), or holds no
    usable caption row (with the reasons rows were dropped): never a traceback, never empty data."""
    from negbench.inputs.sources import DropLog
    from negbench.inputs.sources.generic import iter_corpus

    if corpus.suffix.lower() not in (".parquet", ".pq"):
        _check_utf8(corpus)
    droplog = DropLog(True)
    if next(iter(iter_corpus(corpus, skip_invalid=True, log=droplog)), None) is None:
        why = ", ".join(f"{k} {v}" for k, v in sorted(droplog.drops.items())) or "no data rows"
        raise ConfigError(f"corpus {corpus}: no usable caption rows ({why}); need a path column and a "
                          f"caption column with values")


def _check_utf8(path: Path, block: int = 1 << 20) -> None:
    """Stream the file through an incremental UTF-8 decoder; ConfigError at the first bad byte."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                line += data[:max(0, exc.start)].count(b"\n")
                raise ConfigError(f"corpus {path}: not UTF-8 text at byte {at} (line {line}, "
                                  f"{data[exc.start:exc.start + 1]!r}); re-save it as UTF-8 "
                                  f"(e.g. iconv -f latin1 -t utf-8)") from None
            if not data:
                return
            offset += len(data)
            line += data.count(b"\n")


def _claim_out_dir(out: Path, corpus: Path, cfg: NegdataConfig, vocab, llm, verifier) -> dict:
    """Record the settings in OUT/.negdata/config.json; a folder made with others is refused
    (its parts would not fit together). Returns the settings."""
    (out / "negcap").mkdir(parents=True, exist_ok=True)
    (out / "negmcq").mkdir(parents=True, exist_ok=True)
    settings = {"corpus": str(corpus.resolve()), "seed": cfg.seed, "template_sets": list(cfg.template_sets),
                "captions_per_image": cfg.captions_per_image, "chunk_rows": cfg.chunk_rows,
                "min_support": cfg.min_support, "max_rows": cfg.max_rows, "vocab": list(vocab.names),
                "llm": llm.describe({}) if llm is not None else None, "verifier": verifier.identity if verifier is not None else None}
    key = stable_hash(settings)
    cfg_file = out / ".negdata" / "config.json"
    if cfg_file.is_file() and read_json(cfg_file).get("key") != key:
        raise ConfigError(f"{out} holds negdata made with other settings; use a new --out folder "
                          f"(found {read_json(cfg_file).get('config')})")
    write_json_atomic(cfg_file, {"key": key, "config": settings})
    return settings


@dataclass
class _ChunkRows:
    """One chunk of corpus captions (a multi-caption row contributes one entry per caption)."""
    media: list = dataclasses.field(default_factory=list)
    captions: list = dataclasses.field(default_factory=list)
    objects: list = dataclasses.field(default_factory=list)

    def add(self, media: str, caps: list, objs) -> None:
        self.media.extend([media] * len(caps))
        self.captions.extend(caps)
        self.objects.extend([objs] * len(caps))


def _corpus_chunks(corpus: Path, chunk_rows: int, wanted, max_rows: int | None = None):
    """(chunk index, its rows, its corpus-reading drops) for every chunk with wanted(chunk);
    the rows of other chunks are read past without being kept; rows after max_rows are not read."""
    from negbench.inputs.sources import DropLog
    from negbench.inputs.sources.generic import iter_corpus

    droplog = DropLog(True)
    chunk, rows, keep = -1, _ChunkRows(), False
    for row, media, caps, objs in iter_corpus(corpus, skip_invalid=True, log=droplog):
        if max_rows is not None and row > max_rows:
            break
        c = (row - 1) // chunk_rows
        if c != chunk:
            if keep:
                yield chunk, rows, droplog.drops
            chunk, rows, keep = c, _ChunkRows(), wanted(c)
            droplog.drops = Counter()
        if keep:
            rows.add(media, caps, objs)
    if keep:
        yield chunk, rows, droplog.drops


class _PartWriter:
    """Turns chunks into negcap/ + negmcq/ parts and a per-part record in .negdata/."""

    def __init__(self, out: Path, gen: "_Generator", cfg: NegdataConfig, llm):
        self.out, self.work, self.gen, self.cfg, self.llm = out, out / ".negdata", gen, cfg, llm
        self.schemas = _schemas()
        self.chunks_written = self.captions_written = 0

    def _paths(self, c: int) -> tuple[Path, Path, Path]:
        name = f"part-{c:05d}"
        return self.out / "negcap" / f"{name}.parquet", self.out / "negmcq" / f"{name}.parquet", self.work / f"{name}.json"

    def wanted(self, c: int) -> bool:
        """In this shard and not written by an earlier run (parts are written atomically)."""
        return self.cfg.wants(c) and not all(p.is_file() for p in self._paths(c))

    def write(self, c: int, rows: _ChunkRows, source_drops: Counter) -> None:
        drops = Counter()
        negcap, negmcq = self.gen.chunk(_chunk_rng(self.cfg.seed, c), rows.media, rows.captions, rows.objects,
                                        drops)
        if self.llm is not None and len(negcap["caption"]):
            _paraphrase_negcap(self.llm, negcap, drops)
        negcap_path, negmcq_path, record = self._paths(c)
        _write_parquet(negcap_path, negcap, self.schemas[0])
        _write_parquet(negmcq_path, negmcq, self.schemas[1])
        n_cap, n_mcq = len(negcap["caption"]), len(negmcq["caption_0"])
        write_json_atomic(record, {"chunk": c, "rows_in": len(rows.captions), "negcap": n_cap, "negmcq": n_mcq,
                                   "drops": dict(+(drops + source_drops))})
        self.chunks_written += 1
        self.captions_written += n_cap
        if self.cfg.progress:
            log.info("negdata: chunk %d done (%d NegCap, %d NegMCQ)", c, n_cap, n_mcq)


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
