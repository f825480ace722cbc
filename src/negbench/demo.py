"""`negbench demo`: the paper's whole story on NegWorld, offline, ending with a report.

    from negbench.demo import run_demo
    report = run_demo("demo-out", size="small")    # `negbench demo --out demo-out`

Stages (each writes its outputs under OUT, then a marker OUT/.demo/<stage>.json, atomically;
a stage whose marker exists is skipped, so a second run is instant and an interrupted run
resumes at the stage it was in — pretraining and fine-tuning also resume mid-run):

  world      NegWorld: COCO/VOC/MSR-VTT/CheXpert-style eval data + a CC12M-style corpus
  pretrain   the built-in model (MiniLM text tower) trained contrastively on affirmative captions
  build      the NegBench-World suite (MCQ, negated + plain retrieval, video, CheXpert; 2 wordings)
  eval       every task with the pretrained model              -> OUT/results/<model>/
  eval-tf    every task with the pretrained model behind the training-free negation scorer
             (negaware:decompose:..., docs/training_free.md): a remedy that needs no training
  negdata    a recogniser (absence verifier, trained on the COCO-style train split), then
             NegCap + NegMCQ from the caption-only corpus      -> OUT/negdata/
  finetune   the trainer's `negworld` recipe                    -> OUT/models/finetuned/
  eval-ft    every task again with the fine-tuned model
  probe      probe-text on the model before / after and on the raw MiniLM -> OUT/probe/
  report     OUT/report/report.html (+ report.md, PNGs) and OUT/before_after.md

Sizes: `tiny` (what the tests run; a couple of minutes, too small for the numbers to mean
much) and `small` (the README's demo: ~12 min on 2 CPU cores).
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from negbench.core.configs import load_data_config
from negbench.core.errors import ConfigError
from negbench.core.io import read_json, stable_hash, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

# part of the output folder's key: bump it when a size preset changes what a stage writes, so
# a folder made with the old preset is refused instead of mixed with new outputs
DEMO_VERSION = 6
MINILM = "st:all-MiniLM-L6-v2"
BEFORE_LABEL, AFTER_LABEL = "before (pretrained)", "after (negation fine-tuned)"
TRAINING_FREE_LABEL = "training-free (pretrained + negaware decompose)"
TRAINING_FREE_METHOD = "decompose"   # its documented defaults (lambda 0.5, f = max); never tuned on the eval


@dataclass(kw_only=True, frozen=True)
class DemoSize:
    world: str                                   # negbench.world size preset
    pretrain: dict = field(default_factory=dict)  # pretrain() overrides
    negdata: dict = field(default_factory=dict)   # generate_negdata() options (e.g. max_rows)
    finetune: dict = field(default_factory=dict)  # overrides on top of the `negworld` recipe
    bootstrap_samples: int = 1000
    suite: str = "world"                         # suite of the built tasks.yaml to evaluate
    probe_objects: int | None = None             # first N NegWorld categories (None: all)
    probe_folds: int = 5


def load_sizes() -> dict[str, DemoSize]:
    """The size presets, from negbench/data/sizes/demo.yaml."""
    return {name: DemoSize(**spec) for name, spec in load_data_config("sizes/demo").items()}


SIZES: dict[str, DemoSize] = load_sizes()

# (task, metric key) rows of the printed before/after table, named as everywhere else (results,
# `negbench table`, the report); tasks not in the suite are left out
TABLE_ROWS = (
    ("world_coco_mcq", "accuracy"), ("world_coco_mcq", "accuracy_positive"),
    ("world_coco_mcq", "accuracy_negative"), ("world_coco_mcq", "accuracy_hybrid"),
    ("world_voc_mcq", "accuracy"), ("world_voc_mcq", "accuracy_negative"),
    ("world_coco_mcq_without", "accuracy"), ("world_coco_mcq_without", "accuracy_positive"),
    ("world_coco_mcq_without", "accuracy_negative"), ("world_coco_mcq_without", "accuracy_hybrid"),
    ("world_voc_mcq_without", "accuracy"), ("world_voc_mcq_without", "accuracy_negative"),
    ("world_msrvtt_mcq", "accuracy"), ("world_msrvtt_mcq_without", "accuracy"),
    ("world_coco_retrieval", "t2i_recall@5"), ("world_coco_negated_retrieval", "t2i_recall@5"),
    ("world_coco_negated_retrieval_without", "t2i_recall@5"), ("world_coco_hardneg_retrieval", "t2i_recall@5"),
    ("world_msrvtt_retrieval", "t2i_recall@5"), ("world_msrvtt_negated_retrieval", "t2i_recall@5"),
    ("world_chexpert_binary_mcq", "accuracy"), ("world_chexpert_binary_mcq_control", "accuracy"),
)


@dataclass
class _Ctx:
    out: Path
    size: str
    spec: DemoSize
    seed: int
    device: str | None
    say: Callable[[str], None]
    state: dict = field(default_factory=dict)   # infos of finished stages, by stage name
    text_encodings: dict = field(default_factory=dict)   # lower text layers' outputs, shared by the evals

    @property
    def world(self) -> Path:
        return self.out / "world"

    @property
    def results(self) -> Path:
        return self.out / "results"


# ---------------------------------------------------------------- stages


TRAIN_WORDINGS = ("default", "no", "not", "contain", "except")


def _stage_world(ctx: _Ctx) -> dict:
    from negbench.world import generate_world

    manifest = generate_world(ctx.world, seed=ctx.seed, size=ctx.spec.world, progress=True)
    return {"world": str(ctx.world), "counts": manifest.get("counts")}


def _stage_pretrain(ctx: _Ctx) -> dict:
    from negbench.train.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(corpus=str(ctx.world / "corpus" / "corpus.tsv"), out=str(ctx.out / "models" / "pretrained"),
                         seed=ctx.seed, device=ctx.device, **ctx.spec.pretrain)
    model = pretrain(cfg, resume=True)
    return {"model": model}


def _stage_build(ctx: _Ctx) -> dict:
    from negbench.world.suite import build_world_suite

    tasks_yaml = build_world_suite(ctx.world, ctx.out / "tasks", seed=ctx.seed)
    return {"tasks_yaml": str(tasks_yaml)}


def _evaluate(ctx: _Ctx, model: str) -> dict:
    from negbench.evaluation.engine import evaluate_tasks
    from negbench.inputs.tasks import select_tasks
    from negbench.models.base import load_model
    from negbench.train.finetune import load_recipe

    specs = select_tasks(suites=[ctx.spec.suite], files=[ctx.state["build"]["tasks_yaml"]])
    adapter = load_model(model, device=ctx.device)
    top = {**load_recipe("negworld"), **ctx.spec.finetune}.get("train_text_layers")
    if top is not None:   # the fine-tune keeps the lower text layers: before and after share them
        adapter.share_text_encodings(ctx.text_encodings, top)
    res = evaluate_tasks(specs, adapter, results_dir=ctx.results, cache_dir=ctx.out / "cache", seed=ctx.seed,
                         bootstrap_samples=ctx.spec.bootstrap_samples, skip_existing=True, progress=True,
                         device=ctx.device)
    return {"model": model, "tasks": [r["task"]["name"] for r in res],
            "results": [r["results_file"] for r in res if r.get("results_file")]}


def _stage_eval(ctx: _Ctx) -> dict:
    return _evaluate(ctx, ctx.state["pretrain"]["model"])


def training_free_model(pretrained: str) -> str:
    """The pretrained model behind the training-free scorer (negbench.models.negaware)."""
    return f"negaware:{TRAINING_FREE_METHOD}:{pretrained}"


def _stage_eval_tf(ctx: _Ctx) -> dict:
    return _evaluate(ctx, training_free_model(ctx.state["pretrain"]["model"]))


def _stage_negdata(ctx: _Ctx) -> dict:
    from negbench.construct.negdata import generate_negdata
    from negbench.construct.recogniser import RecogniserVerifier

    out = ctx.out / "negdata"
    manifest = generate_negdata(ctx.world / "corpus" / "corpus.tsv", out, seed=ctx.seed,
                                vocab=ctx.world / "vocab.txt", progress=True,
                                # the corpus is caption-only: a recogniser trained on the annotated
                                # train split keeps shown-but-unnamed objects from being negated
                                verifier=RecogniserVerifier(_train_recogniser(ctx), device=ctx.device),
                                # the eval's held-out "without" wording never appears in training
                                # data, so the table shows whether the gain carries over to it
                                template_sets=TRAIN_WORDINGS, **ctx.spec.negdata)
    return {"negcap": str(out / "negcap"), "negmcq": str(out / "negmcq"), "counts": manifest.get("counts")}


def _train_recogniser(ctx: _Ctx) -> str:
    """The absence verifier for NegCap: `negbench recogniser` on the COCO-style train split."""
    from negbench.construct.recogniser import META, RecogniserConfig, train_recogniser
    from negbench.inputs.sources import read_source
    from negbench.inputs.vocab import load_vocab

    folder = ctx.out / "models" / "recogniser"
    if not (folder / META).is_file():
        data = read_source("coco", ctx.world / "coco", split="train", vocab=load_vocab(ctx.world / "vocab.txt"))
        train_recogniser(data, folder, RecogniserConfig(model=ctx.state["pretrain"]["model"], seed=ctx.seed,
                                                        device=ctx.device))
    return str(folder)


def _stage_finetune(ctx: _Ctx) -> dict:
    from negbench.train.finetune import finetune

    nd = ctx.state["negdata"]
    model = finetune(ctx.state["pretrain"]["model"], nd["negcap"], nd["negmcq"], ctx.out / "models" / "finetuned",
                     recipe="negworld", resume=True, seed=ctx.seed, device=ctx.device, **ctx.spec.finetune)
    return {"model": model}


def _stage_eval_ft(ctx: _Ctx) -> dict:
    return _evaluate(ctx, ctx.state["finetune"]["model"])


def _stage_probe(ctx: _Ctx) -> dict:
    from negbench.analysis.probe import load_templates, probe_text

    objects = load_templates()["default_objects"]
    if ctx.spec.probe_objects:
        objects = objects[:ctx.spec.probe_objects]
    runs = {"before": ctx.state["pretrain"]["model"], "after": ctx.state["finetune"]["model"], "minilm": MINILM}
    files = {}
    for name, model in runs.items():
        folder = ctx.out / "probe" / name
        if not (folder / "probe.json").exists():  # resumable within the stage
            ctx.say(f"    probe-text {model}")
            probe_text(model, objects, out_dir=folder, folds=ctx.spec.probe_folds, seed=ctx.seed, device=ctx.device)
        files[name] = str(folder / "probe.json")
    return {"probes": files}


def _stage_report(ctx: _Ctx) -> dict:
    from negbench.analysis.report import make_report

    before, after = ctx.state["pretrain"]["model"], ctx.state["finetune"]["model"]
    training_free = ctx.state["eval-tf"]["model"]
    probes = ctx.state["probe"]["probes"]
    models = ctx.out / "models"
    report = make_report([ctx.results], ctx.out / "report", title=f"negbench demo ({ctx.size} NegWorld)",
                         labels={before: BEFORE_LABEL, after: AFTER_LABEL, MINILM: "raw MiniLM",
                                 training_free: TRAINING_FREE_LABEL},
                         before=before, after=after, probes=[probes["before"], probes["after"], probes["minilm"]],
                         train_logs={"pre-training": models / "pretrained", "negation fine-tuning": models / "finetuned"},
                         trained_wordings=TRAIN_WORDINGS)
    table = before_after_table(ctx.results, before, after, ceilings=_retrieval_ceilings(ctx, before),
                               training_free=training_free)
    write_text_atomic(ctx.out / "before_after.md", table + "\n")
    return {"report": str(report), "report_md": str(report.with_name("report.md")),
            "before_after": str(ctx.out / "before_after.md")}


STAGES: tuple[tuple[str, str, Callable[[_Ctx], dict]], ...] = (
    ("world", "generate NegWorld", _stage_world),
    ("pretrain", "pre-train the built-in model on affirmative captions", _stage_pretrain),
    ("build", "build the NegBench-World suite", _stage_build),
    ("eval", "evaluate the pretrained model", _stage_eval),
    ("eval-tf", "evaluate the pretrained model with the training-free negation scorer", _stage_eval_tf),
    ("negdata", "make NegCap + NegMCQ fine-tuning data", _stage_negdata),
    ("finetune", "negation fine-tuning (recipe negworld)", _stage_finetune),
    ("eval-ft", "evaluate the fine-tuned model", _stage_eval_ft),
    ("probe", "probe the text encoders", _stage_probe),
    ("report", "write the report", _stage_report),
)


# ---------------------------------------------------------------- table


def _retrieval_ceilings(ctx: _Ctx, model: str) -> dict[str, float]:
    """task name -> the oracle's t2i R@5 (%) on its NegWorld file (negbench.world.headroom),
    for the table's retrieval rows: how far from the best possible a model is."""
    from negbench.analysis.report import index_results, load_results
    from negbench.inputs.vocab import read_vocab_file
    from negbench.world.headroom import ceiling_r5

    by = index_results(load_results([ctx.results]))
    vocab = read_vocab_file(ctx.world / "vocab.txt")
    out = {}
    for task, key in TABLE_ROWS:
        res = by.get((model, task))
        if key == "t2i_recall@5" and res is not None and task not in out:
            out[task] = ceiling_r5(ctx.world, Path(res.task["resolved_file"]), vocab)
    return out


def before_after_table(results_dir, before: str, after: str, ceilings: dict[str, float] | None = None,
                       training_free: str | None = None) -> str:
    """Markdown table of the headline numbers (TABLE_ROWS) for the two models, in percent, each row
    named by its task and metric key (the question type's name beside accuracy_<type>) with the n
    the values are over; with `training_free` (a model string), a column of the pretrained model
    behind the training-free scorer between them (Δ stays after - before); with `ceilings`
    (task -> %), a column of the oracle's ceiling beside the retrieval rows."""
    from negbench.analysis.report import index_results, load_results, metric_value

    by = index_results(load_results([results_dir]))
    tf_head, tf_rule = (" training-free |", "---:|") if training_free else ("", "")
    head = f"| task | metric | n | before |{tf_head} after | Δ (pp) |"
    rule = f"|---|---|---:|---:|{tf_rule}---:|---:|"
    lines = [head + " oracle ceiling |", rule + "---:|"] if ceilings else [head, rule]
    for task, key in TABLE_ROWS:
        rb, ra = by.get((before, task)), by.get((after, task))
        if rb is None or ra is None:
            continue
        vb, va = metric_value(rb, key), metric_value(ra, key)
        if vb is None or va is None:
            continue
        rt = by.get((training_free, task)) if training_free else None
        vt = metric_value(rt, key) if rt is not None else None
        tf_cell = (f" {100 * vt:.1f} |" if vt is not None else " – |") if training_free else ""
        row = (f"| {task} | {_metric_label(key)} | {_metric_n(ra, key)} | {100 * vb:.1f} |{tf_cell} {100 * va:.1f} "
               f"| {100 * (va - vb):+.1f} |")
        if ceilings:
            row += f" {ceilings[task]:.1f} |" if task in ceilings else " |"
        lines.append(row)
    return "\n".join(lines)


def _metric_label(key: str) -> str:
    """'accuracy_negative' -> 'accuracy_negative (Negation)': the key, and the paper's name of its type."""
    from negbench.analysis.results import TYPE_NAMES
    from negbench.inputs.kinds import metric_template

    template = metric_template(key)
    return f"{key} ({TYPE_NAMES[template]})" if template in TYPE_NAMES else key


def _metric_n(result, key: str) -> str:
    """How many items the metric is a mean over (Result.metric_n: questions, a type's questions,
    text queries for t2i recall), as the table and the report say it."""
    n = result.metric_n(key)
    return f"{n:,}" if n is not None else "?"


# ---------------------------------------------------------------- driver


def _marker(out: Path, stage: str) -> Path:
    return out / ".demo" / f"{stage}.json"


def _missing_outputs(info, out: Path) -> list[str]:
    """Paths named in a stage's info (model strings included) that no longer exist under out."""
    missing: list[str] = []

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            path = v.split(":", 1)[1] if v.startswith("builtin:") else v
            if path.startswith(str(out)) and not Path(path).exists():
                missing.append(path)
    walk(info)
    return missing


def run_demo(out_dir="demo-out", size: str = "small", seed: int = 0, *, device: str | None = None,
             say: Callable[[str], None] | None = None) -> Path:
    """Run (or resume) the demo in out_dir; returns the report.html path.

    Progress goes to `say` (default print). OUT/demo.json records each stage's time and
    whether this run skipped it.
    """
    if size not in SIZES:
        raise ConfigError(f"unknown demo size {size!r}; available: {', '.join(SIZES)}")
    say = say or (lambda msg: print(msg, flush=True))
    out = Path(out_dir).expanduser().resolve()
    config = _claim_out_dir(out, {"size": size, "seed": seed, "demo_version": DEMO_VERSION})
    ctx = _Ctx(out, size, SIZES[size], seed, device, say)
    t_all = time.perf_counter()
    say(f"negbench demo ({size}, seed {seed}) in {out}")
    timings = {name: _run_stage(ctx, i, name, desc, fn) for i, (name, desc, fn) in enumerate(STAGES, 1)}
    total = time.perf_counter() - t_all
    report = Path(ctx.state["report"]["report"])
    write_json_atomic(out / "demo.json", {"config": config, "stages": timings, "run_seconds": total,
                                          "report": str(report), "models": {
                                              "before": ctx.state["pretrain"]["model"],
                                              "after": ctx.state["finetune"]["model"]}})
    _summary(ctx, report, total)
    return report


def _claim_out_dir(out: Path, config: dict) -> dict:
    """Use `out` for this demo: refused when it holds another demo's or anything else's files."""
    out.mkdir(parents=True, exist_ok=True)
    key = stable_hash(config)
    cfg_file = out / ".demo" / "config.json"
    if cfg_file.exists() and read_json(cfg_file).get("key") != key:
        raise ConfigError(f"{out} holds a demo made with {read_json(cfg_file).get('config')}; "
                          f"asked for {config}: choose another --out")
    if not cfg_file.exists() and any(p.name != ".demo" for p in out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no demo; choose an empty or new --out folder")
    write_json_atomic(cfg_file, {"key": key, "config": config})
    return config


def _run_stage(ctx: _Ctx, i: int, name: str, desc: str, fn: Callable[[_Ctx], dict]) -> dict:
    """Run one stage, or take its recorded info when its marker and outputs are still there."""
    say, n = ctx.say, len(STAGES)
    marker = _marker(ctx.out, name)
    done = read_json(marker) if marker.exists() else None
    gone = _missing_outputs(done["info"], ctx.out) if done else []
    if gone:
        say(f"[{i}/{n}] {name}: outputs missing ({gone[0]}{', ...' if len(gone) > 1 else ''}), rerunning")
    elif done:
        ctx.state[name] = done["info"]
        say(f"[{i}/{n}] {name}: done already ({done['seconds']:.1f}s when run), skipping")
        return {"seconds": done["seconds"], "skipped": True}
    say(f"[{i}/{n}] {name}: {desc} ...")
    t0 = time.perf_counter()
    info = fn(ctx)
    seconds = time.perf_counter() - t0
    write_json_atomic(marker, {"stage": name, "info": info, "seconds": seconds,
                               "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    ctx.state[name] = info
    say(f"[{i}/{n}] {name}: done in {seconds:.1f}s")
    return {"seconds": seconds, "skipped": False}


def _summary(ctx: _Ctx, report: Path, total: float) -> None:
    say = ctx.say
    say("")
    say("Before / after negation fine-tuning (%, NegWorld test split):")
    say(Path(ctx.state["report"]["before_after"]).read_text().rstrip())
    say("")
    say(f"report: {report}")
    say(f"        {ctx.state['report']['report_md']}")
    say(f"this run: {total:.1f}s")
