"""The concept layer: which objects are present, which plausible ones are verifiably absent.

- Object extraction from captions: `negbench.inputs.vocab.Vocabulary.extract` (lexicon matcher).
- Hard-negative proposal: absent objects ranked by how often they co-occur with the present
  ones over the whole dataset (the paper's method for COCO/VOC), drawn by a seeded sampler,
  with a minimum-support guard (a candidate needs at least `min_support` co-occurrences).
- Absence verification through pluggable verifiers (registry `VERIFIERS`): `annotations`
  (exhaustive labels, COCO/VOC/CheXpert/NegWorld), `captions` (weak: not mentioned in any
  caption), `owl` (OWL-ViT / OWLv2 detector via transformers) and `clip` (image-text score
  under a calibrated threshold). A verifier answers True (absent), False (present) or None
  (cannot tell); callers drop rows whose negatives cannot be verified and count them.
"""
from __future__ import annotations

import bisect
import hashlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from negbench.core.errors import ConfigError
from negbench.inputs.records import AnnotatedSample
from negbench.core.registry import Registry

log = logging.getLogger(__name__)


def sample_rng(seed: int, key: str) -> random.Random:
    """A generator that depends only on (seed, key), so each sample's draws are the same
    whatever else is in the run: sharded outputs concatenate to the unsharded one."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


# ---------------------------------------------------------------- co-occurrence

class Cooccurrence:
    """Image-level co-occurrence counts over a fixed list of category names."""

    def __init__(self, names: Sequence[str]):
        self.names = list(dict.fromkeys(names))
        self.index = {n: i for i, n in enumerate(self.names)}
        n = len(self.names)
        self.freq = [0] * n
        self.pairs = [[0] * n for _ in range(n)]
        self.n_samples = 0
        self._cache: dict = {}

    @classmethod
    def from_object_sets(cls, names: Sequence[str], object_sets: Iterable[Iterable[str]]) -> "Cooccurrence":
        stats = cls(names)
        for objs in object_sets:
            stats.add(objs)
        return stats

    def add(self, objects: Iterable[str]) -> None:
        idx = sorted({self.index[o] for o in objects if o in self.index})
        self.n_samples += 1
        for i in idx:
            self.freq[i] += 1
            row = self.pairs[i]
            for j in idx:
                if j != i:
                    row[j] += 1
        self._cache.clear()

    def merge(self, other: "Cooccurrence") -> None:
        if other.names != self.names:
            raise ValueError("cannot merge co-occurrence stats over different vocabularies")
        self.n_samples += other.n_samples
        for i in range(len(self.names)):
            self.freq[i] += other.freq[i]
            for j in range(len(self.names)):
                self.pairs[i][j] += other.pairs[i][j]
        self._cache.clear()

    def to_dict(self) -> dict:
        return {"names": self.names, "freq": self.freq, "pairs": self.pairs, "n_samples": self.n_samples}

    @classmethod
    def from_dict(cls, d: dict) -> "Cooccurrence":
        stats = cls(d["names"])
        stats.freq, stats.pairs, stats.n_samples = list(d["freq"]), [list(r) for r in d["pairs"]], d["n_samples"]
        return stats

    def candidates(self, present: Sequence[str], exclude: Sequence[str] = (), min_support: int = 1,
                   fallback: bool = True) -> tuple[list[str], list[float], int]:
        """Absent candidates with cumulative weights, and how many have co-occurrence support.

        Weight = co-occurrence count with the present objects (summed). When fewer than one
        candidate reaches `min_support`, and `fallback` is on, candidates are weighted by their
        overall frequency instead (still never a present/excluded object).
        """
        key = (tuple(sorted(present)), tuple(sorted(exclude)), min_support, fallback)   # order-free
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        blocked = set(present) | set(exclude)
        idx = [self.index[p] for p in present if p in self.index]
        names, weights = [], []
        for j, name in enumerate(self.names):
            if name in blocked:
                continue
            score = sum(self.pairs[i][j] for i in idx)
            if score >= min_support:
                names.append(name)
                weights.append(float(score))
        supported = len(names)
        if not names and fallback:
            for j, name in enumerate(self.names):
                if name not in blocked and self.freq[j] > 0:
                    names.append(name)
                    weights.append(float(self.freq[j]))
        cum, total = [], 0.0
        for w in weights:
            total += w
            cum.append(total)
        result = (names, cum, supported)
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[key] = result
        return result

    def propose(self, present: Sequence[str], k: int, rng: random.Random, *, exclude: Sequence[str] = (),
                min_support: int = 1, fallback: bool = True) -> tuple[list[str], bool]:
        """Draw up to k distinct plausible absent objects, weighted by co-occurrence.

        Returns (negatives, from_fallback). Draws with rejection of repeats: k is small (<= 3
        questions per image) so this is cheaper than reweighting, and stays seeded.
        """
        names, cum, supported = self.candidates(present, exclude, min_support, fallback)
        if not names:
            return [], False
        if len(names) <= k:
            out = list(names)
            rng.shuffle(out)
            return out, supported == 0
        total = cum[-1]
        out: list[str] = []
        for _ in range(8 * k):
            name = names[min(bisect.bisect_right(cum, rng.random() * total), len(names) - 1)]
            if name not in out:
                out.append(name)
                if len(out) == k:
                    break
        return out, supported == 0


# ---------------------------------------------------------------- verifiers

class AbsenceVerifier(Protocol):
    name: str

    def verify(self, sample: AnnotatedSample, candidates: Sequence[str], media_root: Path | None = None
               ) -> list[bool | None]:
        """For each candidate: True = verified absent, False = present, None = cannot tell."""

    def verify_many(self, samples: Sequence[AnnotatedSample], candidates: Sequence[Sequence[str]],
                    media_root: Path | None = None) -> list[list[bool | None]]:
        """`verify` for many samples at once (a verifier that looks at images batches them)."""


class Verifier:
    """Base of the verifiers: `verify_many` answers sample by sample unless a subclass batches."""
    name = "verifier"

    @property
    def identity(self) -> str:
        """What decides the verdicts (name, model, threshold): outputs made with another are stale."""
        return self.name

    def verify(self, sample, candidates, media_root=None):
        raise NotImplementedError

    def verify_many(self, samples, candidates, media_root=None):
        return [self.verify(s, c, media_root) for s, c in zip(samples, candidates)]


def annotation_verdict(sample: AnnotatedSample, name: str) -> bool | None:
    if name in sample.objects:
        return False
    if name in sample.uncertain:
        return None
    if sample.absent is not None:
        return True if name in sample.absent else None
    return True if sample.objects_from_annotations else None


class AnnotationVerifier(Verifier):
    """Absence from exhaustive annotations; None for samples whose objects came from captions."""
    name = "annotations"

    def verify(self, sample, candidates, media_root=None):
        return [annotation_verdict(sample, c) for c in candidates]


class CaptionVerifier(Verifier):
    """Weak evidence: absent when no caption mentions it. For caption-only sources whose captions
    are meant to list what is visible; prefer a detector when one is available."""
    name = "captions"

    def __init__(self, vocab=None):
        self.vocab = vocab

    def verify(self, sample, candidates, media_root=None):
        out = []
        for c in candidates:
            v = annotation_verdict(sample, c)
            if v is None and c not in sample.uncertain and sample.captions:
                v = c not in sample.objects
            out.append(v)
        return out


def _load_media_frames(path: Path, n_frames: int = 4):
    """PIL images: the image itself, or n frames sampled uniformly from a video."""
    from PIL import Image
    if path.suffix.lower() in {".mp4", ".avi", ".mov", ".mkv", ".webm"}:
        import av
        with av.open(str(path)) as container:
            frames = [f.to_image() for f in container.decode(video=0)]
        if not frames:
            raise ConfigError(f"video has no frames: {path}")
        step = max(1, len(frames) // n_frames)
        return [frames[min(i * step + step // 2, len(frames) - 1)] for i in range(min(n_frames, len(frames)))]
    with Image.open(path) as im:
        return [im.convert("RGB")]


class OwlVerifier(Verifier):
    """Open-vocabulary detector (OWL-ViT or OWLv2 through transformers).

    A candidate is absent when no box for the prompt "a photo of a {x}" scores >= threshold
    (default 0.1, as OWL-ViT's own examples) in any frame. OWLv2 pads images to a square before
    resizing, so boxes are mapped back with target size (max(h, w), max(h, w)), not (h, w).
    Annotated samples are answered from their annotations first.
    """
    name = "owl"

    def __init__(self, model: str = "google/owlv2-base-patch16-ensemble", threshold: float = 0.1,
                 prompt: str = "a photo of a {x}", device: str = "cpu", frames: int = 4):
        from transformers import AutoProcessor  # heavy; only when this verifier is used
        self.model_name, self.threshold, self.prompt, self.frames = model, threshold, prompt, frames
        self.processor = AutoProcessor.from_pretrained(model)
        self.is_v2 = "owlv2" in type(self.processor).__name__.lower()
        if self.is_v2:
            from transformers import Owlv2ForObjectDetection as Model
        else:
            from transformers import OwlViTForObjectDetection as Model
        self.model = Model.from_pretrained(model).to(device).eval()
        self.device = device

    @property
    def identity(self) -> str:
        return f"owl:{self.model_name}:{self.threshold}:{self.prompt}"

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        if self.is_v2:
            side = max(width, height)
            return (side, side)
        return (height, width)

    def detect(self, image, texts: Sequence[str]) -> list[float]:
        """Max box score per text query on one PIL image."""
        import torch
        inputs = self.processor(text=[list(texts)], images=image, return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        w, h = image.size
        post = getattr(self.processor, "post_process_grounded_object_detection", None) \
            or self.processor.post_process_object_detection
        res = post(outputs=outputs, threshold=0.0, target_sizes=torch.tensor([self.target_size(w, h)]))[0]
        best = [0.0] * len(texts)
        for score, label in zip(res["scores"].tolist(), res["labels"].tolist()):
            best[int(label)] = max(best[int(label)], float(score))
        return best

    def verify(self, sample, candidates, media_root=None):
        out: list[bool | None] = [annotation_verdict(sample, c) if sample.objects_from_annotations else None
                                  for c in candidates]
        todo = [i for i, v in enumerate(out) if v is None and candidates[i] not in sample.uncertain
                and candidates[i] not in sample.objects]
        if not todo:
            return [v if v is not None else (False if c in sample.objects else None)
                    for v, c in zip(out, candidates)]
        path = Path(sample.media) if media_root is None else Path(media_root) / sample.media
        texts = [self.prompt.format(x=candidates[i]) for i in todo]
        best = [0.0] * len(todo)
        for frame in _load_media_frames(path, self.frames):
            best = [max(a, b) for a, b in zip(best, self.detect(frame, texts))]
        for i, s in zip(todo, best):
            out[i] = s < self.threshold
        return [False if c in sample.objects else v for v, c in zip(out, candidates)]


class ClipScoreVerifier(Verifier):
    """Absent when the image-text cosine of "a photo of a {x}" is below `threshold`.

    Calibrate the threshold on annotated data with `calibrate_threshold`: a score below the
    chosen low percentile of *present* objects' scores is strong evidence of absence.
    """
    name = "clip"

    def __init__(self, model: str = "hf:openai/clip-vit-base-patch32", threshold: float = 0.2,
                 prompt: str = "a photo of a {x}", device: str = "cpu", frames: int = 4):
        from negbench.models.base import load_model
        self.adapter = load_model(model, device=device)
        self.threshold, self.prompt, self.frames = threshold, prompt, frames

    @property
    def identity(self) -> str:
        return f"clip:{self.adapter.model_string}:{self.threshold}:{self.prompt}"

    def scores(self, sample: AnnotatedSample, names: Sequence[str], media_root=None) -> list[float]:
        import torch
        path = Path(sample.media) if media_root is None else Path(media_root) / sample.media
        frames = _load_media_frames(path, self.frames)
        pre = self.adapter.preprocess
        with torch.no_grad():
            img = self.adapter.encode_images(torch.stack([pre(f) for f in frames]))
            img = torch.nn.functional.normalize(img.float(), dim=-1).mean(0)
            img = torch.nn.functional.normalize(img, dim=-1)
            txt = self.adapter.encode_texts([self.prompt.format(x=n) for n in names])
            txt = torch.nn.functional.normalize(txt.float(), dim=-1)
        return (txt @ img).tolist()

    def verify(self, sample, candidates, media_root=None):
        out = [annotation_verdict(sample, c) if sample.objects_from_annotations else None for c in candidates]
        todo = [i for i, v in enumerate(out) if v is None and candidates[i] not in sample.uncertain]
        if todo:
            for i, s in zip(todo, self.scores(sample, [candidates[i] for i in todo], media_root)):
                out[i] = s < self.threshold
        return [False if c in sample.objects else v for v, c in zip(out, candidates)]


def calibrate_threshold(present_scores: Sequence[float], percentile: float = 5.0) -> float:
    """The `percentile`-th percentile of scores of objects known present: scoring below it is
    rare for a present object, so it marks absence with about (100 - percentile)% precision."""
    if not present_scores:
        raise ConfigError("cannot calibrate a threshold without scores of present objects")
    s = sorted(present_scores)
    k = max(0, min(len(s) - 1, int(len(s) * percentile / 100.0)))
    return float(s[k])


VERIFIERS: Registry = Registry("absence verifier")
VERIFIERS.register("annotations", AnnotationVerifier)
VERIFIERS.register("captions", CaptionVerifier)
VERIFIERS.register("owl", "negbench.construct.concepts:OwlVerifier")
VERIFIERS.register("clip", "negbench.construct.concepts:ClipScoreVerifier")
VERIFIERS.register("recogniser", "negbench.construct.recogniser:RecogniserVerifier")


def make_verifier(name: str | AbsenceVerifier | None, **kwargs) -> AbsenceVerifier:
    if name is None:
        return AnnotationVerifier()
    if not isinstance(name, str):
        return name
    return VERIFIERS.get(name)(**kwargs)


# ---------------------------------------------------------------- selecting negatives

@dataclass
class NegativeChoice:
    negatives: list[str]
    fallback: bool = False
    reason: str | None = None      # why none could be chosen (for the drop counts)


@dataclass
class ConceptConfig:
    k: int = 3                      # negatives (questions) per sample
    min_support: int = 1            # co-occurrences a candidate needs
    fallback: bool = True           # frequency fallback when nothing co-occurs
    oversample: int = 2             # candidates proposed per needed negative (some fail verification)
    extra: dict = field(default_factory=dict)


def choose_negatives(sample: AnnotatedSample, stats: Cooccurrence, verifier: AbsenceVerifier,
                     rng: random.Random, cfg: ConceptConfig, media_root: Path | None = None) -> NegativeChoice:
    """Propose co-occurring absent objects, keep the verified ones (at most cfg.k)."""
    exclude = tuple(sample.uncertain)
    cands, fb = stats.propose(sample.objects, cfg.k * cfg.oversample, rng, exclude=exclude,
                              min_support=cfg.min_support, fallback=cfg.fallback)
    if not cands:
        return NegativeChoice([], fb, "no_candidate_negative")
    verdicts = verifier.verify(sample, cands, media_root)
    kept = [c for c, v in zip(cands, verdicts) if v is True][:cfg.k]
    if not kept:
        unknown = any(v is None for v in verdicts)
        return NegativeChoice([], fb, "unverifiable_negatives" if unknown else "no_absent_negative")
    return NegativeChoice(kept, fb)
