"""Benchmark construction: sources -> concepts -> templates -> task files (+ tasks.yaml).

    from negbench.construct.build import BuildConfig, build_benchmark
    res = build_benchmark("coco", "~/coco", "out/", BuildConfig(tasks=("mcq", "retrieval"), seed=0))
    # negbench eval --tasks-file out/tasks.yaml --suite built --model ...

Every sample gets its own random generator keyed by (seed, source, sample id), so outputs
do not depend on which other samples are in the run: `--shard i/n` outputs (contiguous
blocks of samples) concatenate to exactly the unsharded files. Negatives and question
structure are drawn once per sample and shared by all template sets, so the wording sets
ask the *same* questions in different words (template sensitivity is then measurable).

Task files carry media paths relative to the source root; each TaskSpec's `data_root`
points there (relative to the YAML), so `negbench eval --tasks-file OUT/tasks.yaml` needs
no --data-root.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from negbench import __version__
from negbench.construct.concepts import (ConceptConfig, Cooccurrence, NegativeChoice, choose_negatives, make_verifier,
                               sample_rng)
from negbench.core.errors import ConfigError
from negbench.inputs.formats import MCQItem, RetrievalItem, manifest_path, read_task_file, write_task_file
from negbench.inputs.kinds import get_kind
from negbench.core.io import write_json_atomic, write_text_atomic
from negbench.core.shards import parse_shard, shard_file_name, shard_slice
from negbench.inputs.sources import SourceData, read_source
from negbench.construct.templates import (CORRECT_ROLES, affirmative_options, chexpert_binary, make_mcq, mcq_templates,
                                negate_caption, negation_templates)

log = logging.getLogger(__name__)

TASK_CHOICES = ("mcq", "retrieval", "binary", "hardneg")


@dataclass(kw_only=True, frozen=True)
class BuildConfig:
    """What to build from one source; `build_benchmark` also reads the source with it."""
    tasks: tuple[str, ...] = ("mcq", "retrieval", "binary")
    template_sets: tuple[str, ...] = ("default",)
    seed: int = 0
    questions_per_image: int = 3        # one per sampled negative (the paper's "up to 3")
    orders: tuple[str, ...] = ("affneg",)
    hybrid_object: str = "B"            # the authors' benchmark generator; "A" = fine-tuning one
    min_support: int = 1
    fallback: bool = True
    shard: tuple[int, int] | None = None
    name: str = "built"                 # task-name prefix and suite name
    verifier: str = "annotations"
    verifier_options: dict | None = None
    split: str | None = None            # reading: the source's split (None: the reader's default)
    vocab: str | Path | None = None     # reading: vocabulary file for caption-only sources
    skip_invalid: bool = False          # reading: skip (and count) bad rows instead of failing
    layout: str = "negbench"            # "authors": MCQ files as the authors' generator writes them

    def __post_init__(self):
        for name in ("tasks", "template_sets", "orders"):   # lists from YAML / argparse
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "shard", parse_shard(self.shard))
        if self.layout not in ("negbench", "authors"):
            raise ConfigError(f"unknown layout {self.layout!r}; allowed ['negbench', 'authors']")
        bad = [t for t in self.tasks if t not in TASK_CHOICES]
        if bad:
            raise ConfigError(f"unknown task kind(s) {bad}; allowed {list(TASK_CHOICES)}")


@dataclass
class BuildResult:
    out_dir: Path
    tasks_yaml: Path | None
    specs: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped_tasks: list[str] = field(default_factory=list)
    drops: Counter = field(default_factory=Counter)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


# ---------------------------------------------------------------- per-sample generation

class _Builder:
    """Holds the shared state of one source's build: stats, verifier, chosen negatives."""

    def __init__(self, data: SourceData, cfg: BuildConfig, verifier, verifier_root: Path):
        self.data, self.cfg, self.verifier, self.root = data, cfg, verifier, verifier_root
        self.stats = Cooccurrence.from_object_sets(data.categories, (s.objects for s in data.samples))
        self.samples = data.samples[shard_slice(len(data.samples), cfg.shard)]
        self.ccfg = ConceptConfig(k=cfg.questions_per_image, min_support=cfg.min_support, fallback=cfg.fallback)
        self._neg: dict[str, NegativeChoice] = {}
        self.concept_counts: Counter = Counter()

    def rng(self, sample, purpose: str):
        return sample_rng(self.cfg.seed, f"{self.data.name}:{purpose}:{sample.sample_id}")

    def negatives(self, sample) -> NegativeChoice:
        hit = self._neg.get(sample.sample_id)
        if hit is None:
            if not sample.objects and sample.absent is None:
                hit = NegativeChoice([], False, "no_objects")
            else:
                hit = choose_negatives(sample, self.stats, self.verifier, self.rng(sample, "neg"), self.ccfg,
                                       self.root)
                self.concept_counts["negatives_from_frequency_fallback"] += int(hit.fallback and bool(hit.negatives))
            self._neg[sample.sample_id] = hit
        return hit

    def _with_negatives(self, needs: str, drops: Counter):
        """(sample, its negatives) for the samples that have `needs` ("objects" or "captions")
        and at least one negative; the others are counted in `drops` by reason."""
        for s in self.samples:
            if not getattr(s, needs):
                drops[f"no_{needs}"] += 1
                continue
            choice = self.negatives(s)
            if not choice.negatives:
                drops[choice.reason or "no_negative"] += 1
                continue
            yield s, choice

    # ---- MCQ (4-way)
    def mcq(self, set_name: str) -> tuple[list[MCQItem], Counter]:
        tset = mcq_templates(set_name)
        media = self.data.modality
        items, drops = [], Counter()
        for s, choice in self._with_negatives("objects", drops):
            rng = self.rng(s, "mcq")
            negs = choice.negatives
            offset = rng.randrange(len(CORRECT_ROLES))
            for q, n in enumerate(negs[:self.cfg.questions_per_image]):
                role = CORRECT_ROLES[(offset + q) % len(CORRECT_ROLES)]
                objs = list(s.objects)
                present = rng.sample(objs, 2) if len(objs) >= 2 else objs
                pair = [n] + ([negs[(q + 1) % len(negs)]] if len(negs) > 1 else [])
                if tset.needs_second_negative and len(pair) < 2:
                    rng.randrange(4), rng.shuffle([0, 1, 2])   # keep draws aligned across sets
                    drops["needs_two_negatives"] += 1
                    continue
                question = make_mcq(tset, present, pair, role, rng, media=media,
                                    hybrid_object=self.cfg.hybrid_object)
                items.append(MCQItem(len(items) + 1, s.media, question.captions, question.correct,
                                     question.template, question.caption_types))
        return items, drops

    def _one_per_sample(self, purpose: str, make) -> tuple[list[MCQItem], Counter]:
        """One question per sample from make(sample, absent, rng) -> (options, correct, ...) or a
        drop reason (str); `absent`: the sample's labelled-absent names, sorted; each sample's
        generator is keyed by `purpose`."""
        items, drops = [], Counter()
        for s in self.samples:
            rng = self.rng(s, purpose)
            made = make(s, sorted(a for a in (s.absent or ()) if a not in s.objects), rng)
            if isinstance(made, str):
                drops[made] += 1
            else:
                items.append(MCQItem(len(items) + 1, s.media, *made))
        return items, drops

    # ---- 4-way control: affirmative options only (one present, three absent findings/objects)
    def mcq_control(self) -> tuple[list[MCQItem], Counter]:
        def make(s, absent, rng):
            if not s.objects or len(absent) < 3:
                return "control_needs_1_present_3_absent"
            options, correct = affirmative_options(rng.choice(sorted(s.objects)), rng.sample(absent, 3), rng)
            return options, correct, "positive", ("positive",) * 4
        return self._one_per_sample("mcq_control", make)

    # ---- binary (explicit labels: 'shows X' vs 'does not show X') and its control
    def binary(self) -> tuple[list[MCQItem], Counter]:
        def make(s, absent, rng):
            if not s.objects and not absent:
                return "no_definite_label"
            use_present = bool(s.objects) and (not absent or rng.random() < 0.5)
            return chexpert_binary(rng.choice(sorted(s.objects) if use_present else absent), use_present, rng)
        return self._one_per_sample("binary", make)

    def binary_control(self) -> tuple[list[MCQItem], Counter]:
        def make(s, absent, rng):
            if not s.objects or not absent:
                return "control_needs_present_and_absent"
            return affirmative_options(rng.choice(sorted(s.objects)), [rng.choice(absent)], rng)
        return self._one_per_sample("binary_control", make)

    # ---- retrieval
    def plain_retrieval(self) -> tuple[list[RetrievalItem], Counter]:
        items, drops = [], Counter()
        for s in self.samples:
            if not s.captions:
                drops["no_captions"] += 1
                continue
            items.append(RetrievalItem(len(items) + 1, s.media, tuple(s.captions)))
        return items, drops

    def _negated_captions(self, s, set_name: str, order: str, negs: list[str]) -> list[str] | None:
        tset = negation_templates(set_name)
        if tset.n_absent > len(negs):
            return None
        rng = self.rng(s, "retrieval")
        out = []
        for i, cap in enumerate(s.captions):
            j = rng.randrange(len(negs))
            absent = [negs[j]] + [negs[(j + 1 + k) % len(negs)] for k in range(tset.n_absent - 1)]
            out.append(negate_caption(tset, cap, absent, order, self.data.modality))
        return out

    def negated_retrieval(self, set_name: str, order: str) -> tuple[list[RetrievalItem], Counter]:
        items, drops = [], Counter()
        for s, choice in self._with_negatives("captions", drops):
            caps = self._negated_captions(s, set_name, order, choice.negatives)
            if caps is None:
                drops["needs_two_negatives"] += 1
                continue
            items.append(RetrievalItem(len(items) + 1, s.media, tuple(caps)))
        return items, drops

    def hardneg_retrieval(self, set_name: str, order: str) -> tuple[list[RetrievalItem], Counter]:
        """Pairs (I, J): I's captions negate N; J shows N together with an object of I, so the
        gallery holds a hard negative for every query "A ... but no N" (HardNeg-Syn style)."""
        items, drops, used = [], Counter(), set()
        by_object: dict[str, list[int]] = {}
        samples = self.samples
        for k, s in enumerate(samples):
            for o in s.objects:
                by_object.setdefault(o, []).append(k)
        for k, s in enumerate(samples):
            if k in used or not s.captions:
                continue
            choice = self.negatives(s)
            partner, neg = None, None
            for n in choice.negatives:
                best, best_overlap = None, 0
                for j in by_object.get(n, ()):
                    if j == k or j in used or not samples[j].captions:
                        continue
                    overlap = len(set(samples[j].objects) & set(s.objects))
                    if overlap > best_overlap:
                        best, best_overlap = j, overlap
                if best is not None:
                    partner, neg = best, n
                    break
            if partner is None:
                drops["no_hard_negative_partner"] += 1
                continue
            other = self.negatives(samples[partner])
            if not other.negatives:
                drops["partner_without_negative"] += 1
                continue
            negs_i = [neg] + [x for x in choice.negatives if x != neg]
            caps_i = self._negated_captions(s, set_name, order, negs_i[:1] if negation_templates(set_name).n_absent == 1 else negs_i)
            caps_j = self._negated_captions(samples[partner], set_name, order, other.negatives)
            if caps_i is None or caps_j is None:
                drops["needs_two_negatives"] += 1
                continue
            used.update((k, partner))
            items.append(RetrievalItem(len(items) + 1, s.media, tuple(caps_i)))
            items.append(RetrievalItem(len(items) + 1, samples[partner].media, tuple(caps_j)))
        return items, drops


# ---------------------------------------------------------------- writing

def _suffix(set_name: str) -> str:
    return "" if set_name == "default" else f"_{set_name}"


def _manifest(data: SourceData, cfg: BuildConfig, kind: str, items: list, drops: Counter, extra: dict) -> dict:
    all_drops = Counter(data.drops)
    all_drops.update(drops)
    return {
        "negbench_version": __version__,
        "source": data.summary(),
        "seed": cfg.seed,
        "shard": f"{cfg.shard[0]}/{cfg.shard[1]}" if cfg.shard else None,
        "kind": kind,
        "counts": {"items": len(items), "samples_in": len(data.samples)},
        "drops": dict(sorted(all_drops.items())),
        "dropped_rows": data.dropped[:100],
        "verifier": cfg.verifier,
        "concepts": {"min_support": cfg.min_support, "frequency_fallback": cfg.fallback,
                     "questions_per_image": cfg.questions_per_image, "hybrid_object": cfg.hybrid_object},
        "paraphrase": None,
        **extra,
    }


class _Writer:
    """Writes one source's task files (and their paraphrased twins) and collects their specs."""

    def __init__(self, data: SourceData, out_dir: Path, cfg: BuildConfig, paraphraser):
        self.data, self.out_dir, self.cfg, self.paraphraser = data, out_dir, cfg, paraphraser
        self.res = BuildResult(out_dir, None)
        self.data_root = os.path.relpath(data.root.resolve(), out_dir.resolve())
        self.group = _slug(data.group)

    def skip(self, what: str, why: str) -> None:
        self.res.skipped_tasks.append(f"{self.group} {what}: {why}")

    def emit(self, kind: str, fname: str, built: tuple[list, Counter], *, task: str, template_set=None,
             extra: dict | None = None, **spec) -> None:
        """Write one task file; `spec`: variant, negated, description of its TaskSpec."""
        data, cfg, (items, drops) = self.data, self.cfg, built
        spec = {"variant": "templated", "negated": True, "description": "", **spec}
        path = self.out_dir / shard_file_name(fname, cfg.shard)
        man = _manifest(data, cfg, kind, items, drops, {"template_set": template_set, **(extra or {})})
        write_task_file(path, kind, items, man)
        self.res.files.append(path)
        self.res.drops.update(drops)
        self.res.specs.append({"name": f"{cfg.name}_{self.group}_{task}", "kind": kind, "file": fname,
                               "modality": data.modality, "group": data.group, "variant": spec["variant"],
                               "negated": spec["negated"], "data_root": self.data_root,
                               "description": spec["description"], "wording": spec.get("wording", "default"),
                               "hard_negative": spec.get("hard_negative", False),
                               "caption_order": spec.get("caption_order")})
        log.debug("wrote %s (%d items)", path, len(items))  # the CLI prints the list once
        if self.paraphraser is not None and get_kind(kind).paraphrased_copy and spec["negated"] and items:
            self._paraphrased(kind, fname, items, man)

    def _paraphrased(self, kind: str, fname: str, items: list, man: dict) -> None:
        para_items, stats = self.paraphraser.paraphrase_items(kind, items, self.data.categories)
        pname = fname.replace(".csv", "_paraphrased.csv")
        outcome = getattr(self.paraphraser, "outcome", None)   # all calls failed: refused, or 'templated'
        variant = outcome(stats, pname) if outcome is not None else "paraphrased"
        ppath = self.out_dir / shard_file_name(pname, self.cfg.shard)
        write_task_file(ppath, kind, para_items,
                        dict(man, paraphrase={**self.paraphraser.describe(stats), "variant": variant}, kind=kind))
        self.res.files.append(ppath)
        last = self.res.specs[-1]
        self.res.specs.append({**last, "name": f"{last['name']}_paraphrased", "file": pname, "variant": variant})


def build_source(data: SourceData, out_dir, cfg: BuildConfig, *, verifier=None, paraphraser=None) -> BuildResult:
    """All requested task files for one source already read; returns their specs (not yet in YAML)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if verifier is None or isinstance(verifier, str):
        verifier = make_verifier(verifier or cfg.verifier, **(cfg.verifier_options or {}))
    b = _Builder(data, cfg, verifier, data.root)
    w = _Writer(data, out_dir, cfg, paraphraser)
    for set_name in cfg.template_sets:
        _check_template_set(set_name)
        _emit_worded(b, w, set_name)
    _emit_plain_retrieval(b, w)
    _emit_controls_and_binary(b, w)
    w.res.drops.update({k: v for k, v in b.concept_counts.items() if v})
    w.res.drops.update(data.drops)  # the reader's drops too (unknown_category_id, bad_label, invalid_xml, ...)
    return w.res


def _mcq_in_layout(b: _Builder, mcq_set: str) -> tuple[list, Counter]:
    """The MCQ items in the configured layout (`authors`: as their generator writes them)."""
    items, drops = b.mcq(mcq_set)
    if b.cfg.layout != "authors":
        return items, drops
    from negbench.construct.authors_layout import objects_per_media, to_authors_layout

    return to_authors_layout(items, objects_per_media(b.data.samples), drops)


def _emit_worded(b: _Builder, w: _Writer, set_name: str) -> None:
    """The tasks asked in one template set's words: MCQ, negated and hard-negative retrieval."""
    data, cfg, sfx = b.data, b.cfg, _suffix(set_name)
    has_captions = any(s.captions for s in data.samples)
    mcq_set = (data.mcq_sets or {}).get(set_name, set_name if data.mcq_sets is None else None)
    if "mcq" in cfg.tasks and mcq_set is None:
        w.skip(f"mcq{sfx}", f"no '{set_name}' wording for this source")
    elif "mcq" in cfg.tasks:
        w.emit("mcq", f"{data.prefix}_mcq{sfx}.csv", _mcq_in_layout(b, mcq_set), task=f"mcq{sfx}", template_set=mcq_set,
               wording=set_name, description=f"{data.group} {data.split} MCQ, '{mcq_set}' templates")
    if "retrieval" in cfg.tasks and has_captions:
        for order in cfg.orders:
            osfx = "" if order == "affneg" else f"_{order}"
            w.emit("retrieval", f"{data.prefix}_negated_retrieval{sfx}{osfx}.csv", b.negated_retrieval(set_name, order),
                   task=f"negated_retrieval{sfx}{osfx}", template_set=set_name, extra={"order": order},
                   wording=set_name, caption_order=order, description=f"{data.group} {data.split} negated retrieval ({order}), '{set_name}' templates")
    if "hardneg" in cfg.tasks and has_captions:
        items, drops = b.hardneg_retrieval(set_name, cfg.orders[0])
        if not items:
            w.skip(f"hardneg{sfx}", "no hard-negative pairs in this data")
            return
        w.emit("retrieval", f"{data.prefix}_hardneg_retrieval{sfx}.csv", (items, drops),
               task=f"hardneg_retrieval{sfx}", template_set=set_name, extra={"order": cfg.orders[0]},
               wording=set_name, hard_negative=True, caption_order=cfg.orders[0], description=f"{data.group} hard-negative retrieval: the gallery pairs each query "
                           f"with an image showing the negated object")


def _emit_plain_retrieval(b: _Builder, w: _Writer) -> None:
    data = b.data
    if "retrieval" not in b.cfg.tasks:
        return
    if not any(s.captions for s in data.samples):
        w.skip("retrieval", "the source has no captions")
        return
    w.emit("retrieval", f"{data.prefix}_retrieval.csv", b.plain_retrieval(), task="retrieval", variant="original",
           negated=False, description=f"{data.group} {data.split} plain retrieval (baseline)")


def _emit_controls_and_binary(b: _Builder, w: _Writer) -> None:
    """Tasks that need explicit absence labels (CheXpert-style): controls and binary MCQ."""
    data, cfg = b.data, b.cfg
    has_labels = any(s.absent is not None for s in data.samples)
    if has_labels and "mcq" in cfg.tasks and data.mcq_sets is not None:
        w.emit("mcq", f"{data.prefix}_mcq_control.csv", b.mcq_control(), task="mcq_control", variant="control",
               negated=False, description=f"{data.group} 4-way control: affirmative options only")
    if "binary" not in cfg.tasks:
        return
    if not has_labels:
        w.skip("binary", "the source has no explicit absence labels")
        return
    w.emit("binary-mcq", f"{data.prefix}_binary_mcq.csv", b.binary(), task="binary_mcq",
           description=f"{data.group} binary: 'shows X' vs 'does not show X'")
    w.emit("binary-mcq", f"{data.prefix}_binary_mcq_control.csv", b.binary_control(), task="binary_mcq_control",
           variant="control", negated=False,
           description=f"{data.group} binary control: two affirmative findings, no negation")


def _check_template_set(name: str) -> None:
    from negbench.construct.templates import template_set_names
    known = set(template_set_names("retrieval")) | set(template_set_names("mcq"))
    if name not in known:
        raise ConfigError(f"unknown template set {name!r}; available: {', '.join(sorted(known))}")


def write_tasks_yaml(out_dir, specs: Sequence[dict], suites: dict[str, list[str]], name: str = "tasks.yaml"
                     ) -> Path:
    import yaml
    doc = {"tasks": [dict(s) for s in specs], "suites": {k: list(v) for k, v in suites.items()}}
    header = ("# written by `negbench build`; evaluate with:\n"
              f"#   negbench eval --tasks-file {Path(out_dir) / name} --suite {next(iter(suites), '')} --model MODEL\n")
    return write_text_atomic(Path(out_dir) / name, header + yaml.safe_dump(doc, sort_keys=False, width=120))


def build_benchmark(source: str, src, out_dir, config: BuildConfig | None = None, *, paraphraser=None,
                    **options) -> BuildResult:
    """Read `src` with reader `source` and write its NegBench task files + tasks.yaml to out_dir.

    `config` (default BuildConfig()) says what to build; `options` are BuildConfig fields that
    override it, e.g. build_benchmark("coco", src, out, tasks=("mcq",), seed=3).
    """
    from negbench.inputs.vocab import load_vocab

    cfg = dataclasses.replace(config or BuildConfig(), **options)
    kwargs = {"skip_invalid": cfg.skip_invalid, "vocab": load_vocab(cfg.vocab) if cfg.vocab is not None else None}
    if cfg.split is not None:
        kwargs["split"] = cfg.split
    data = read_source(source, src, **kwargs)
    res = build_source(data, out_dir, cfg, paraphraser=paraphraser)
    suites = {cfg.name: [s["name"] for s in res.specs]}
    if cfg.shard is None:
        res.tasks_yaml = write_tasks_yaml(out_dir, res.specs, suites, "tasks.yaml")
    else:   # a shard's specs are written so merge_shards can restore the full YAML
        yaml_name = shard_file_name("tasks.yaml", cfg.shard)
        write_json_atomic(Path(out_dir) / f"{yaml_name}.json", {"specs": res.specs, "suites": suites})
    return res


def merge_shards(out_dir) -> Path:
    """Concatenate `X.shard-i-of-n.csv` files (all i present) into X.csv, and write tasks.yaml."""
    import csv
    import json
    out_dir = Path(out_dir)
    groups: dict[tuple[str, int], dict[int, Path]] = {}
    for p in out_dir.glob("*.shard-*-of-*.csv"):
        m = re.fullmatch(r"(.+)\.shard-(\d+)-of-(\d+)\.csv", p.name)
        if m:
            groups.setdefault((m.group(1), int(m.group(3))), {})[int(m.group(2))] = p
    if not groups:
        raise ConfigError(f"no shard files (*.shard-i-of-n.csv) in {out_dir}")
    for (stem, n), parts in sorted(groups.items()):
        missing = sorted(set(range(n)) - set(parts))
        if missing:
            raise ConfigError(f"{stem}: shards {missing} of {n} are missing")
        header, rows, manifests = None, [], []
        for i in range(n):
            with open(parts[i], newline="", encoding="utf-8") as f:
                r = list(csv.reader(f))
            header = header or r[0]
            rows += r[1:]
            mp = manifest_path(parts[i])
            if mp.exists():
                manifests.append(json.loads(mp.read_text()))
        from negbench.core.io import atomic_path
        target = out_dir / f"{stem}.csv"
        with atomic_path(target) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(header)
                w.writerows(rows)
        if manifests:
            man = dict(manifests[0], shard=None)
            man["counts"] = dict(man["counts"], items=len(rows))
            drops = Counter()
            for m in manifests:
                drops.update({k: v for k, v in m["drops"].items()})
            src_drops = manifests[0]["source"]["drops"]   # source-level drops are counted once per shard
            for k, v in src_drops.items():
                drops[k] -= v * (len(manifests) - 1)
            man["drops"] = dict(sorted((k, v) for k, v in drops.items() if v))
            write_json_atomic(manifest_path(target), man)
    specs_files = sorted(out_dir.glob("tasks.shard-*-of-*.yaml.json"))
    if not specs_files:
        raise ConfigError(f"no tasks.shard-*.yaml.json in {out_dir}")
    meta = json.loads(specs_files[0].read_text())
    return write_tasks_yaml(out_dir, meta["specs"], meta["suites"])


def check_task_files(tasks_yaml) -> dict[str, int]:
    """Read back every task of a tasks.yaml with media checks on; returns name -> item count."""
    from negbench.inputs.tasks import load_task_file
    out = {}
    for spec in load_task_file(tasks_yaml):
        data = read_task_file(spec.resolve_file(), spec.kind, spec.resolve_media_root(), check_media=True)
        out[spec.name] = len(data.items)
    return out
