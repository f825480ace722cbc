"""Training-free negation remedies that wrap any embedding model named by a model string.

    negaware:decompose:BASE                      e.g. negaware:decompose:openclip:ViT-B-32-quickgelu@openai
    negaware:decompose,lambda=0.5,f=mean:BASE    options after the method, comma-separated key=value
    negaware:project:BASE                        the embedding-arithmetic method (re-implementation)
    negaware:decompose,llm=MODEL@URL:BASE        captions split by an OpenAI-compatible LLM endpoint

Both parse each caption with the rule-based parser (negbench.core.negation_parse) into the
affirmed part and the negated object phrases, and embed the parts with the base model. With
`llm=MODEL@URL` (either method) an LLM does the split instead, validated, cached and falling back
to the rules, counted (negbench.models.negaware_llm; `decomposition_counts()`). A caption
without negation is encoded exactly as the base model encodes it, so it scores bit for bit as the
base model does. Nothing is trained; the trainer refuses these models. docs/training_free.md has
the definitions, the defaults and what was measured.

decompose (the decomposition family of SpaceVLM, arXiv 2511.12331; the LLM split replaced by rules)::

    score(m, c) = s(m, affirmed) - lambda * f_j s(m, negated_j)        f = max (default) or mean

where s is the base model's cosine (float32 L2-normalised embeddings, as the engine computes it)
and an empty affirmed part ("This image does not feature a dog.") is embedded as "" (the base
model's empty caption). encode_texts returns a PACKED row per caption: [affirmed features (D) |
SLOTS x negated-object features (D each) | number of negated objects]; `similarity` unpacks it.
Objects beyond the slots are embedded together as one phrase in the last slot.

project (a re-implementation of the method described in "Seeing What's Not There: Negation
Understanding Needs More Than Training", ICLR 2026, https://openreview.net/forum?id=Dd86hsSam5;
no code was published, the details below are ours)::

    t  = e(caption) / |e(caption)|,  Q = an orthonormal basis of the negated objects' embeddings
    t' = t - beta * Q Q^T t          (remove the negated concepts' components)
    t'' = t' / |t'| + gamma * a / |a|,  a = e(affirmed part) (the anchor; "" when nothing is affirmed)

encode_texts returns t'' (one D-vector per caption) and `similarity` returns None: the engine's
standard cosine scores it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from negbench.core.errors import ConfigError
from negbench.models.base import ModelAdapter

try:  # the capability that makes the engine call `similarity` (models/base.py)
    from negbench.models.base import SIMILARITY
except ImportError:  # a base.py from before the capability: the engine never asks, the value is the same
    SIMILARITY = "similarity"

PACKING_VERSION = 1   # layout of the decompose method's packed rows: bump when it changes
METHODS = ("decompose", "project")
REDUCTIONS = ("max", "mean")
TRAINING_FREE = "training-free"


@dataclass(frozen=True)
class NegAwareOptions:
    method: str = "decompose"
    lam: float = 0.5          # decompose: weight of the negated objects' similarity ("lambda=")
    f: str = "max"            # decompose: how the negated objects' similarities combine
    slots: int = 4            # decompose: negated objects kept apart per caption
    beta: float = 1.0         # project: share of the negated components removed
    gamma: float = 0.5        # project: weight of the anchor (affirmed part) added back
    llm_model: str = ""       # llm=MODEL@URL: the captions' split asked of this chat model ...
    llm_url: str = ""         # ... at this OpenAI-compatible endpoint (not in identity(): the answers are the model's)
    llm_timeout: float = 30.0
    llm_retries: int = 2
    llm_workers: int = 4

    def tag(self) -> str:
        """The options as they enter identity() (only those of the method; the LLM's model name and
        prompt version, never its URL, timeouts or concurrency)."""
        if self.method == "decompose":
            tag = f"decompose,lambda={self.lam!r},f={self.f},slots={self.slots}"
        else:
            tag = f"project,beta={self.beta!r},gamma={self.gamma!r}"
        if self.llm_model:
            from negbench.models.negaware_llm import PROMPT_VERSION

            tag += f",llm={self.llm_model},prompt={PROMPT_VERSION}"
        return tag


_LLM_KEYS = {"llm": ("llm_model", str), "llm_timeout": ("llm_timeout", float), "llm_retries": ("llm_retries", int),
             "llm_workers": ("llm_workers", int)}
_KEYS = {"decompose": {"lambda": ("lam", float), "f": ("f", str), "slots": ("slots", int), **_LLM_KEYS},
         "project": {"beta": ("beta", float), "gamma": ("gamma", float), **_LLM_KEYS}}


def parse_spec(spec: str) -> tuple[NegAwareOptions, str]:
    """'decompose,lambda=0.5:openclip:ViT-B-32@openai' -> (options, 'openclip:ViT-B-32@openai')."""
    from negbench.models.negaware_llm import split_llm_option

    rest, llm_model, llm_url = split_llm_option(spec)   # the URL's ':' would end the option list
    head, sep, base = rest.partition(":")
    if not sep or not base:
        raise ConfigError(f"negaware model string 'negaware:{spec}' must look like negaware:METHOD[,KEY=VALUE...]:BASE, "
                          f"e.g. 'negaware:decompose:openclip:ViT-B-32@openai'; methods: {list(METHODS)}")
    method, *pairs = [p.strip() for p in head.split(",")]
    if method not in METHODS:
        raise ConfigError(f"negaware method {method!r} not in {list(METHODS)}")
    values: dict = {"method": method}
    for pair in pairs:
        key, eq, raw = pair.partition("=")
        if not eq or key not in _KEYS[method]:
            raise ConfigError(f"negaware:{method}: option {pair!r} not one of "
                              f"{[k + '=VALUE' for k in _KEYS[method]]}")
        field, cast = _KEYS[method][key]
        if key == "llm":
            values.update(llm_model=llm_model, llm_url=llm_url)
            continue
        try:
            values[field] = cast(raw)
        except ValueError:
            raise ConfigError(f"negaware:{method}: option {key}={raw!r} is not a {cast.__name__}") from None
    opts = NegAwareOptions(**values)
    _check(opts)
    if base.partition(":")[0] == "negaware":
        raise ConfigError(f"negaware model string wraps another negaware model ({base!r}); wrap the base model once")
    return opts, base


def _check(o: NegAwareOptions) -> None:
    if o.f not in REDUCTIONS:
        raise ConfigError(f"negaware:decompose: f={o.f!r} not in {list(REDUCTIONS)}")
    if o.slots < 1:
        raise ConfigError(f"negaware:decompose: slots={o.slots} must be >= 1")
    if not o.llm_model and (o.llm_timeout, o.llm_retries, o.llm_workers) != (30.0, 2, 4):
        raise ConfigError("negaware: llm_timeout=, llm_retries= and llm_workers= need llm=MODEL@URL")
    if o.llm_model:
        from negbench.models.negaware_llm import check_settings

        check_settings(_llm_settings(o))
    for name in ("lam", "beta", "gamma"):
        if not np.isfinite(getattr(o, name)) or getattr(o, name) < 0:
            raise ConfigError(f"negaware: {'lambda' if name == 'lam' else name}={getattr(o, name)} must be finite and >= 0")


def wrapped_identity(base_identity: str, opts: NegAwareOptions) -> str:
    from negbench.core.negation_parse import PARSER_VERSION

    return f"negaware[{opts.tag()};parser={PARSER_VERSION};packing={PACKING_VERSION}]({base_identity})"


# ---------------------------------------------------------------- scoring (pure functions)

def standard_cosine(media_emb, text_emb) -> np.ndarray:
    """(M, T) float64: the engine's standard score, computed as negbench.evaluation.metrics does it
    (float32, torch.nn.functional.normalize with eps 1e-12, then a float32 matrix product), widened
    to float64. Negation-free captions of the decompose method score with exactly this."""
    import torch
    import torch.nn.functional as F

    m = F.normalize(_f32(media_emb), dim=-1, eps=1e-12)
    t = F.normalize(_f32(text_emb), dim=-1, eps=1e-12)
    return (m @ t.T).double().numpy()


def _f32(x):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.detach().to(device="cpu", dtype=torch.float32)


def unpack(text_emb, dim: int, slots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packed rows (T, D * (1 + slots) + 1) -> (affirmed (T, D), negated (T, slots, D), counts (T,))."""
    a = np.asarray(text_emb)
    width = dim * (1 + slots) + 1
    if a.ndim != 2 or a.shape[1] != width:
        raise ConfigError(f"negaware: text embeddings of shape {a.shape} are not packed rows of width {width} "
                          f"(D={dim}, slots={slots}); were they made by another model?")
    counts = np.rint(a[:, -1]).astype(np.int64)
    return a[:, :dim], a[:, dim:-1].reshape(len(a), slots, dim), counts


def decompose_scores(media_emb, text_emb, *, lam: float, f: str = "max", slots: int) -> np.ndarray:
    """(M, T) float64 scores of media against packed captions:
    s(m, affirmed) - lam * f_j s(m, negated_j), the standard cosine where a caption has no negation."""
    media = np.asarray(media_emb)
    affirmed, negated, counts = unpack(text_emb, media.shape[1], slots)
    scores = standard_cosine(media, affirmed)
    rows = np.flatnonzero(counts > 0)
    if not len(rows):
        return scores
    n = np.minimum(counts[rows], slots)
    neg = standard_cosine(media, negated[rows].reshape(-1, media.shape[1])).reshape(len(media), len(rows), slots)
    used = np.arange(slots)[None, :] < n[:, None]                   # (R, slots): the filled slots
    if f == "max":
        penalty = np.where(used[None], neg, -np.inf).max(axis=2)
    else:
        penalty = np.where(used[None], neg, 0.0).sum(axis=2) / n[None, :]
    scores[:, rows] = scores[:, rows] - lam * penalty
    return scores


def project_embeddings(caption, negated: Sequence, anchor, *, beta: float, gamma: float):
    """The project method on one caption: t'' from e(caption) (D,), the negated objects' e (K, D)
    and the anchor e(affirmed) (D,) (torch float32)."""
    import torch
    import torch.nn.functional as F

    t = F.normalize(caption, dim=-1)
    q, _ = torch.linalg.qr(F.normalize(torch.stack(list(negated)), dim=-1).T)   # (D, K), orthonormal
    t = t - beta * q @ (q.T @ t)
    return F.normalize(t, dim=-1) + gamma * F.normalize(anchor, dim=-1)


# ---------------------------------------------------------------- the adapter

class NegAwareAdapter(ModelAdapter):
    """A base dual encoder with a training-free negation-aware text side (see the module doc)."""

    def __init__(self, base: ModelAdapter, options: NegAwareOptions):
        self.base, self.options = base, options
        # decompose scores packed rows itself; project's rows are plain embeddings (similarity -> None)
        self.capabilities = frozenset(base.capabilities | ({SIMILARITY} if options.method == "decompose" else set()))
        self.device = base.device
        self.module = base.module
        self.decomposer = _decomposer(options)

    # -- what the engine calls
    def identity(self) -> str:
        return wrapped_identity(self.base.identity(), self.options)

    def preprocess_id(self) -> str:
        return self.base.preprocess_id()

    def preprocess(self, image):
        return self.base.preprocess(image)

    def encode_images(self, pixels):
        return self.base.encode_images(pixels)

    def text_lengths(self, texts: Sequence[str]) -> list[int]:
        return self.base.text_lengths(texts)

    def encode_texts(self, texts: Sequence[str]):
        from negbench.core.negation_parse import parse_negation

        if self.decomposer is not None:
            parses = self.decomposer.parse_many(texts)
        else:
            parses = [parse_negation(t) for t in texts]
        if self.options.method == "decompose":
            return self._packed(texts, parses)
        return self._projected(texts, parses)

    def similarity(self, media_emb, text_emb):
        if self.options.method != "decompose":
            return None   # project: one vector per caption, scored by the standard cosine
        o = self.options
        return decompose_scores(media_emb, text_emb, lam=o.lam, f=o.f, slots=o.slots)

    def run_details(self) -> dict:
        """ModelAdapter.run_details: the LLM decomposition's counts, when there is an LLM."""
        counts = self.decomposition_counts()
        return {"decomposition": counts} if counts else {}

    def decomposition_counts(self) -> dict:
        """With llm=: how the distinct captions this adapter encoded were split -- {'llm', 'no_cue',
        'fallback', 'fallback_REASON'..., 'requests', 'cache_hits'} (negaware_llm.LLMDecomposer.counts);
        {} without llm= (every caption went through the rule parser). Captions the engine found in its
        embedding cache are not encoded, so not counted."""
        return self.decomposer.counts() if self.decomposer is not None else {}

    # -- the text side
    def _embed_unique(self, strings: Sequence[str]) -> dict:
        """One base forward over the distinct strings; {string: (D,) float32 CPU tensor}."""
        unique = list(dict.fromkeys(strings))
        if not unique:
            return {}
        feats = _f32(self.base.encode_texts(unique))
        return {s: feats[i] for i, s in enumerate(unique)}

    def _slot_texts(self, negated: tuple[str, ...]) -> list[str]:
        k = self.options.slots
        if len(negated) <= k:
            return list(negated)
        rest = list(negated[k - 1:])
        return list(negated[:k - 1]) + [", ".join(rest[:-1]) + " and " + rest[-1]]

    def _base_rows(self, texts):
        """The base model's features of `texts`, from one call on exactly this batch: a forward's
        float result can depend on the batch, and the engine gives the base model the same batches,
        so captions without negation get the base model's bits."""
        return _f32(self.base.encode_texts(list(texts)))

    def _packed(self, texts, parses):
        import torch

        rows = self._base_rows(texts)
        emb = self._embed_unique([s for p in parses if p.has_negation for s in (p.affirmed, *self._slot_texts(p.negated))])
        dim, k = rows.shape[1], self.options.slots
        out = torch.zeros((len(texts), dim * (1 + k) + 1), dtype=torch.float32)
        for i, (text, p) in enumerate(zip(texts, parses)):
            if not p.has_negation:
                out[i, :dim] = rows[i]       # the base embedding itself: the standard cosine, bit for bit
                continue
            out[i, :dim] = emb[p.affirmed]
            slot_texts = self._slot_texts(p.negated)
            for j, s in enumerate(slot_texts):
                out[i, dim * (1 + j):dim * (2 + j)] = emb[s]
            out[i, -1] = len(slot_texts)
        return out

    def _projected(self, texts, parses):
        import torch

        rows = self._base_rows(texts)
        emb = self._embed_unique([s for p in parses if p.has_negation for s in (p.affirmed, *p.negated)])
        o = self.options
        out = [row if not p.has_negation else
               project_embeddings(row, [emb[n] for n in p.negated], emb[p.affirmed], beta=o.beta, gamma=o.gamma)
               for row, p in zip(rows, parses)]
        return torch.stack(out)

    # -- what the trainer would call: refused
    def logit_scale(self):
        return self.base.logit_scale()

    def tower_parameters(self, tower: str) -> Iterator:
        return self.base.tower_parameters(tower)

    def trainable_parameters(self, *args, **kwargs):
        raise ConfigError(f"{self.model_string_or_type()}: a {TRAINING_FREE} negation scorer cannot be trained; "
                          f"fine-tune the base model {getattr(self.base, 'model_string', '')!r} instead")

    def save(self, path) -> str:
        raise ConfigError(f"{self.model_string_or_type()}: a {TRAINING_FREE} scorer has no weights of its own to save")

    def model_string_or_type(self) -> str:
        return getattr(self, "model_string", None) or type(self).__name__


def _llm_settings(o: NegAwareOptions):
    from negbench.models.negaware_llm import LLMSettings

    return LLMSettings(o.llm_model, o.llm_url, timeout=o.llm_timeout, retries=o.llm_retries, workers=o.llm_workers)


def _decomposer(options: NegAwareOptions):
    """The LLM client of llm=MODEL@URL, or None (the rule parser)."""
    if not options.llm_model:
        return None
    from negbench.models.negaware_llm import LLMDecomposer

    return LLMDecomposer(_llm_settings(options))


def load(spec: str, device=None, precision: str = "fp32", **base_options) -> NegAwareAdapter:
    """MODEL_BACKENDS loader: 'negaware:METHOD[,K=V...]:BASE' -> the wrapped base model
    (`base_options`, if any, go to the base model's loader)."""
    from negbench.models.base import load_model

    options, base = parse_spec(spec)
    return NegAwareAdapter(load_model(base, device=str(device) if device is not None else None,
                                      precision=precision, **base_options), options)


def identity(spec: str, precision: str = "fp32") -> str | None:
    """MODEL_IDENTITIES: the loaded adapter's identity() without loading it (None if the base's is unknown)."""
    from negbench.models.base import model_identity

    options, base = parse_spec(spec)
    base_id = model_identity(base, precision=precision)
    return None if base_id is None else wrapped_identity(base_id, options)


__all__ = ["NegAwareAdapter", "NegAwareOptions", "decompose_scores", "identity", "load", "parse_spec",
           "project_embeddings", "standard_cosine", "unpack"]
