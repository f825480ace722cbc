"""Everything the report reads, gathered once: results, labels, the before/after pair, datasets in
reading order (COCO first), per-item predictions, training logs and probe files."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from negbench.analysis.results import Result, assign_labels, load_results
from negbench.core.errors import ConfigError
from negbench.core.io import read_json
from negbench.models.names import canonical_model_string

# reading order of datasets: the paper's headline (COCO) first, the medical one last
DATASET_ORDER = ("coco", "voc", "msr-vtt", "msrvtt", "hardneg", "chexpert")
# one meaning per colour in every model-comparison figure: before grey, after blue
BEFORE_COLOR, AFTER_COLOR = "#9E9E9E", "#1565C0"
OTHER_COLORS = ("#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


@dataclass
class TrainLog:
    name: str
    path: Path
    records: list[dict]


@dataclass
class ReportData:
    results: list[Result]
    models: list[str]
    labels: dict[str, str]
    before: str | None = None
    after: str | None = None
    logs: list[TrainLog] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)
    trained_wordings: tuple[str, ...] | None = None
    _frames: dict = field(default_factory=dict)

    def get(self, model: str, task: str) -> Result | None:
        return next((r for r in self.results if r.model == model and r.task_name == task), None)

    def label(self, model: str) -> str:
        return next((r.label for r in self.results if r.model == model), self.labels.get(model, model))

    def color(self, model: str) -> str:
        if model == self.before:
            return BEFORE_COLOR
        if model == self.after:
            return AFTER_COLOR
        others = [m for m in self.models if m not in (self.before, self.after)]
        return OTHER_COLORS[others.index(model) % len(OTHER_COLORS)] if model in others else "#444444"

    def items(self, r: Result):
        """The per-item predictions (pandas DataFrame) of a result, or None (read once)."""
        key = (r.model, r.task_name)
        if key not in self._frames:
            p = r.predictions_path()
            if p is None or not p.exists():
                self._frames[key] = None
            else:
                import pandas as pd

                self._frames[key] = pd.read_parquet(p)
        return self._frames[key]


def group_of(r: Result) -> str:
    return r.task.get("group") or r.task_name


def datasets(results: Sequence[Result]) -> list[str]:
    """Dataset groups in reading order: COCO, VOC, MSR-VTT, HardNeg, CheXpert, then the rest."""
    groups = list(dict.fromkeys(group_of(r) for r in results))

    def rank(g: str) -> tuple[int, int]:
        low = g.lower()
        known = next((i for i, p in enumerate(DATASET_ORDER) if low.startswith(p)), len(DATASET_ORDER))
        return known, groups.index(g)

    return sorted(groups, key=rank)


def tasks_of(data: ReportData, group: str, pred=lambda r: True) -> list[str]:
    """Task names of one dataset that satisfy pred, shortest (the base wording) first."""
    names = list(dict.fromkeys(r.task_name for r in data.results if group_of(r) == group and pred(r)))
    return sorted(names, key=lambda n: (len(n), n))


def headline_tasks(data: ReportData, group: str) -> dict[str, str | None]:
    """The dataset's main tasks: 4-way (else binary) negated MCQ, negated and plain retrieval."""
    def first(pred):
        found = tasks_of(data, group, pred)
        return found[0] if found else None

    templated = lambda r: r.task.get("variant", "templated") == "templated"  # noqa: E731
    negated = lambda r: r.task.get("negated", True)  # noqa: E731
    default_wording = lambda r: r.task.get("wording", "default") == "default"  # noqa: E731
    mcq = first(lambda r: r.answer_bias and negated(r) and templated(r)) or \
        first(lambda r: r.is_choice and negated(r) and templated(r))
    return {"mcq": mcq,
            "negated_retrieval": first(lambda r: r.is_ranking and negated(r) and not r.task.get("hard_negative")
                                       and default_wording(r)),
            "retrieval": first(lambda r: r.is_ranking and not negated(r))}


def wording_of(data: ReportData, task: str, base: str) -> str:
    """The negation wording family of a task (its `wording` field: 'default', 'without', ...)."""
    return next(r.task.get("wording", "default") for r in data.results if r.task_name == task)


def wording_variants(data: ReportData, base: str) -> list[str]:
    """`base` and the tasks that ask the same thing in another negation wording: same kind, group,
    negation, hard-negative flag and caption order, templated, another `wording` field."""
    def meaning(r):
        return (r.kind, r.task.get("group"), r.task.get("negated", True), bool(r.task.get("hard_negative")),
                r.task.get("caption_order"), r.task.get("modality"))

    b = next(r for r in data.results if r.task_name == base)
    names = dict.fromkeys(r.task_name for r in data.results if meaning(r) == meaning(b) and r.task_name != base
                          and r.task.get("variant", "templated") == "templated"
                          and r.task.get("wording", "default") != b.task.get("wording", "default"))
    return [base] + list(names)


def match_model(x: str, models: Sequence[str]) -> str | None:
    """The model string among `models` that `x` names: itself, or the same local weights by another path
    (builtin:demo-out/models/pretrained for builtin:/home/me/demo-out/models/pretrained)."""
    if x in models:
        return x
    canonical = canonical_model_string(x)
    return canonical if canonical in models else None


def resolve_model(x: str, models: Sequence[str], labels: dict[str, str], what: str = "model") -> str:
    """A model string given as itself (any path to the same weights) or as one of the caller's labels."""
    found = match_model(x, models)
    if found:
        return found
    hits = [m for m in models if labels.get(m) == x]
    if not hits:
        raise ConfigError(f"{what} {x!r} is neither a model nor a label in the results; "
                          f"models: {list(models)}, labels: {labels}")
    return hits[0]


def resolve_before_after(models: Sequence[str], labels: dict[str, str], before: str | None,
                         after: str | None) -> tuple[str | None, str | None]:
    """Model strings for the comparison: given as models or labels, else labels 'before…'/'after…'."""
    def find(x: str | None, word: str) -> str | None:
        if x:
            return resolve_model(x, models, labels, f"{word} model")
        hits = [m for m in models if (labels.get(m) or "").lower().startswith(word)]
        return hits[0] if len(hits) == 1 else None

    b, a = find(before, "before"), find(after, "after")
    return (b, a) if b and a and b != a else (None, None)


def read_train_log(path: str | Path, name: str | None = None) -> TrainLog:
    """The trainer's train/log.jsonl (one JSON object per logged step)."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "train" / "log.jsonl" if (p / "train" / "log.jsonl").exists() else p / "log.jsonl"
    if not p.exists():
        raise ConfigError(f"training log not found: {p} (the trainer writes RUN/train/log.jsonl)")
    records = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as err:
            raise ConfigError(f"{p}: line {n} is not JSON ({err})") from None
        if isinstance(rec, dict) and "step" in rec:
            records.append(rec)
    return TrainLog(name or p.parent.parent.name, p, records)


def read_probe(p) -> dict:
    res = p if isinstance(p, dict) else read_json(Path(p).expanduser())
    if not isinstance(res, dict) or "cosine" not in res or "probes" not in res:
        raise ConfigError(f"{p}: not a probe.json written by negbench probe-text")
    return res


def load_report_data(results_paths, *, labels=None, before=None, after=None, train_logs=(), probes=(),
                     trained_wordings=None) -> ReportData:
    """Read every input of the report; before/after first in the model order."""
    results = load_results(results_paths)
    present = list(dict.fromkeys(r.model for r in results))
    labels = {match_model(m, present) or m: lb for m, lb in dict(labels or {}).items()}
    probe_docs = [read_probe(p) for p in probes]
    models = assign_labels(results, labels, [d.get("model", "") for d in probe_docs])
    b, a = resolve_before_after(models, labels, before, after)
    if b and a:  # bars and tables read left to right in time
        models = [b, a] + [m for m in models if m not in (b, a)]
    logs = [read_train_log(p, n) for n, p in (train_logs.items() if isinstance(train_logs, dict)
                                               else ((None, p) for p in train_logs))]
    return ReportData(results, models, labels, b, a, logs, probe_docs,
                      tuple(trained_wordings) if trained_wordings else None)
