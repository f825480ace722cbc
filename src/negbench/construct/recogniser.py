"""A multi-label object recogniser that verifies absence in caption-only corpora.

Web captions name only some of what a picture shows, so "not named" is weak evidence of
"absent": NegCap built from captions alone negates objects that are there. Real pipelines
check with a detector trained on an annotated dataset (COCO); this is that step, small and
offline: a linear multi-label head on a model's frozen image embeddings, trained on an
annotated source (COCO/VOC/... train split), whose threshold is calibrated on held-out
annotated images so that `keep_absent` of the absent objects score below it.

Why calibrate on the absent side: a verifier that refuses every doubtful candidate keeps only
the negatives it finds easy, and a model fine-tuned on easy negatives still fails the hard ones
a benchmark asks about (NegWorld, small: a threshold letting 5% of present objects through
refused 49% of the COCO test questions' truly absent objects, and Negation-type MCQ reached 60%
after fine-tuning against 70% with threshold 0.2). Captions name most of what is shown, so
false negations stay rare with a lenient threshold (bench/negdata_truth.py).

    negbench recogniser --model MODEL --source coco --data WORLD/coco --split train --out R
    negbench negdata ... --verifier recogniser --verifier-model R

A candidate is verified absent when the recogniser's probability is below the threshold and
the caption does not name it; present or named otherwise.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from negbench.construct.concepts import Verifier, annotation_verdict
from negbench.core.errors import ConfigError
from negbench.core.io import atomic_path, write_json_atomic

WEIGHTS, META = "recogniser.pt", "recogniser.json"


@dataclass(kw_only=True, frozen=True)
class RecogniserConfig:
    model: str                   # model string whose image tower gives the features
    keep_absent: float = 0.9     # share of held-out absent objects the threshold verifies absent
    holdout: float = 0.2         # share of the annotated samples kept out of training, for calibration
    steps: int = 300
    lr: float = 0.05
    weight_decay: float = 1e-4
    batch_size: int = 128
    seed: int = 0
    device: str | None = None

    def __post_init__(self):
        # checked before any image is embedded: a bad value must not cost a pass over the data
        if not 0.0 < self.keep_absent <= 1.0:
            raise ConfigError(f"keep_absent must be in (0, 1], got {self.keep_absent}")


def embed_media(adapter, paths: Sequence[Path], batch_size: int = 128, progress: bool = False):
    """L2-normalised image embeddings (N, D), float32 on CPU, of image files, through the
    evaluation engine's encoder (so the recogniser sees images exactly as evaluation does)."""
    import torch

    from negbench.evaluation.encoding import encode_media
    emb, failed = encode_media(adapter, list(paths), batch_size=batch_size, progress="recogniser" if progress else False)
    if failed:
        i, reason = next(iter(failed.items()))
        raise ConfigError(f"{paths[i]}: {reason} ({len(failed)} unreadable image(s))")
    return torch.nn.functional.normalize(torch.from_numpy(emb), dim=-1)


def _logits(head, x):
    # x10: unit-norm features would otherwise need very large weights
    return head(x * 10.0)


def _targets(samples, names: list[str]):
    import torch
    index = {n: j for j, n in enumerate(names)}
    y = torch.zeros(len(samples), len(names))
    for i, s in enumerate(samples):
        for o in s.objects:
            if o in index:
                y[i, index[o]] = 1.0
    return y


def _fit_head(x, y, cfg: RecogniserConfig):
    """Logistic regression for every category at once (full batch Adam: a few hundred steps)."""
    import torch
    g = torch.Generator().manual_seed(cfg.seed)
    head = torch.nn.Linear(x.shape[1], y.shape[1])
    torch.nn.init.normal_(head.weight, std=0.01, generator=g)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(cfg.steps):
        opt.zero_grad()
        loss = loss_fn(_logits(head, x), y)
        loss.backward()
        opt.step()
    return head


def _split(n: int, holdout: float, seed: int):
    import torch
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_hold = max(1, int(round(n * holdout)))
    return order[n_hold:], order[:n_hold]


def calibrated_threshold(probs, y, keep_absent: float) -> float:
    """The probability below which `keep_absent` of the absent (image, object) pairs fall."""
    import torch
    absent = probs[y < 0.5]
    if absent.numel() == 0:
        raise ConfigError("cannot calibrate the recogniser: every held-out object is present in every image")
    return float(torch.quantile(absent, keep_absent))


def train_recogniser(data, out_dir, cfg: RecogniserConfig, *, progress: bool = False) -> dict:
    """Train on an annotated SourceData (exhaustive labels) and write the recogniser folder."""
    import torch

    from negbench.models.base import load_model
    samples = [s for s in data.samples if s.objects_from_annotations]
    if len(samples) < 20:
        raise ConfigError(f"{data.root}: {len(samples)} annotated samples; a recogniser needs at least 20")
    names = list(data.categories)
    adapter = load_model(cfg.model, device=cfg.device)
    x = embed_media(adapter, [Path(data.root) / s.media for s in samples], cfg.batch_size, progress)
    y = _targets(samples, names)
    train, hold = _split(len(samples), cfg.holdout, cfg.seed)
    head = _fit_head(x[train], y[train], cfg)
    with torch.no_grad():
        probs = torch.sigmoid(_logits(head, x[hold]))
    threshold = calibrated_threshold(probs, y[hold], cfg.keep_absent)
    meta = {"model": adapter.model_string, "categories": names, "threshold": threshold, "keep_absent": cfg.keep_absent,
            "trained_on": {"source": data.name, "root": str(data.root), "split": data.split,
                           "samples": len(train), "held_out": len(hold)},
            "held_out": _held_out_quality(probs, y[hold], threshold)}
    _write(Path(out_dir), head, meta)
    return meta


def _held_out_quality(probs, y, threshold: float) -> dict:
    """How the calibrated threshold does on the held-out samples."""
    absent_call, absent, present = probs < threshold, y < 0.5, y > 0.5
    return {"absent_verdicts": int(absent_call.sum()), "absent_verdicts_present": int((absent_call & present).sum()),
            "absent_kept": float((absent_call & absent).sum() / max(1, int(absent.sum()))),
            "present_recall": float(((probs >= threshold) & present).sum() / max(1, int(present.sum())))}


def _write(out: Path, head, meta: dict) -> None:
    import torch
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, tmp)
    write_json_atomic(out / META, meta)


class RecogniserVerifier(Verifier):
    """Absence verifier backed by a trained recogniser folder (see module docstring)."""
    name = "recogniser"

    def __init__(self, model: str, threshold: float | None = None, device: str | None = None,
                 batch_size: int = 128):
        import torch

        from negbench.models.base import load_model
        folder = Path(model)
        if not (folder / META).is_file():
            raise ConfigError(f"{folder}: not a recogniser folder (no {META}); train one with `negbench recogniser`")
        self.meta = json.loads((folder / META).read_text(encoding="utf-8"))
        self.threshold = float(self.meta["threshold"] if threshold is None else threshold)
        self.index = {n: j for j, n in enumerate(self.meta["categories"])}
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        self.head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
        self.head.load_state_dict(state)
        self.adapter = load_model(self.meta["model"], device=device)
        self.batch_size = batch_size

    @property
    def identity(self) -> str:
        return f"recogniser:{self.meta['model']}:{self.meta['trained_on']}:{self.threshold}"

    def probabilities(self, paths: Sequence[Path]):
        import torch
        x = embed_media(self.adapter, list(paths), self.batch_size)
        with torch.no_grad():
            return torch.sigmoid(_logits(self.head, x))

    def verify_many(self, samples, candidates: Sequence[Sequence[str]], media_root: Path | None = None):
        """One batched pass over the samples' images; per sample one verdict per candidate."""
        root = Path(media_root) if media_root is not None else None
        todo = [i for i, s in enumerate(samples) if not s.objects_from_annotations and candidates[i]]
        probs = self.probabilities([(root / samples[i].media) if root else Path(samples[i].media) for i in todo])
        row_of = {i: r for r, i in enumerate(todo)}
        out = []
        for i, (s, cands) in enumerate(zip(samples, candidates)):
            if s.objects_from_annotations or i not in row_of:
                out.append([annotation_verdict(s, c) for c in cands])
                continue
            out.append([self._verdict(s, c, probs[row_of[i]]) for c in cands])
        return out

    def _verdict(self, sample, name: str, probs) -> bool | None:
        if name in sample.objects:
            return False
        if name not in self.index:
            return None          # the recogniser never learnt it: cannot tell
        return bool(probs[self.index[name]] < self.threshold)

    def verify(self, sample, candidates, media_root=None):
        return self.verify_many([sample], [candidates], media_root)[0]
