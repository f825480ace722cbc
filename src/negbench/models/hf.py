"""transformers adapter: 'hf:HUB_ID' or 'hf:/local/dir' (CLIPModel, SiglipModel, or any model
with get_image_features / get_text_features), with its image processor and tokenizer.

A hub id is resolved by transformers (its cache, or a download when online); a local
folder is what `save_pretrained` writes, so `adapter.save(dir)` returns 'hf:DIR' that loads back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

import torch

from negbench.core.errors import ConfigError
from negbench.models.base import ModelAdapter, precision_dtype
from negbench.models.hub_cache import cached_hub_commit


def _features(out) -> torch.Tensor:
    """transformers < 5 returns a tensor; 5.x returns an output whose pooler_output is projected."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ConfigError(f"model returned {type(out).__name__} without pooler_output")
    return pooled


class HFAdapter(ModelAdapter):
    """A transformers dual encoder (CLIP / SigLIP family) behind the ModelAdapter interface."""

    def __init__(self, model, image_processor, tokenizer, *, model_string: str, weights_id: str,
                 device: torch.device, precision: str = "fp32"):
        # bf16/fp16: the weights are cast once here, inputs follow (see models/base.py)
        self.dtype = precision_dtype(precision)
        self.module = model.to(device=device, dtype=self.dtype).eval()
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.model_string = model_string
        self.weights_id = weights_id
        self.weights_tag: str | None = None
        self.device = device
        self.precision = precision
        # SigLIP was trained on max_length padding; CLIP on padding to the longest + EOS pooling.
        self.pad_to_max = getattr(model.config, "model_type", "") in ("siglip", "siglip2")
        self.max_length = self._max_length()

    def _max_length(self) -> int:
        cfg = getattr(self.module.config, "text_config", None)
        n = getattr(cfg, "max_position_embeddings", None) or 77
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        return int(min(n, tok_max)) if tok_max and tok_max < 1_000_000 else int(n)

    def identity(self) -> str:
        tag = f"|{self.weights_tag}" if self.weights_tag else ""
        return f"hf|{self.weights_id}{tag}{_precision_tag(self.precision)}"

    def preprocess_id(self) -> str:
        cfg = self.image_processor.to_dict() if hasattr(self.image_processor, "to_dict") else {}
        return "hf|" + json.dumps(cfg, sort_keys=True, default=str)

    def preprocess(self, image) -> torch.Tensor:
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.module.get_image_features(pixel_values=pixels.to(device=self.device, dtype=self.dtype)))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(list(texts), padding="max_length" if self.pad_to_max else True,
                               truncation=True, max_length=self.max_length, return_tensors="pt")
        kwargs = {"input_ids": batch["input_ids"].to(self.device)}
        if "attention_mask" in batch and not self.pad_to_max:
            kwargs["attention_mask"] = batch["attention_mask"].to(self.device)
        return _features(self.module.get_text_features(**kwargs))

    def text_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts (batching by length; SigLIP pads to max_length anyway)."""
        if self.pad_to_max:
            return [len(t) for t in texts]
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return [len(i) for i in ids]

    def logit_scale(self) -> torch.Tensor:
        return self.module.logit_scale.exp()

    def tower_parameters(self, tower: str) -> Iterator[torch.nn.Parameter]:
        if tower not in ("image", "text"):
            raise ConfigError(f"tower {tower!r} not in ['image', 'text']")
        prefixes = ("vision_model.", "visual_projection.") if tower == "image" else ("text_model.", "text_projection.")
        for name, p in self.module.named_parameters():
            if name.startswith(prefixes):
                yield p

    def save(self, path) -> str:
        """save_pretrained of model, image processor and tokenizer into folder `path`; returns 'hf:PATH'."""
        path = Path(path).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        self.module.save_pretrained(path)
        self.image_processor.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return f"hf:{path}"


def _precision_tag(precision: str) -> str:
    """Cast weights give other embeddings: part of identity(), empty for fp32 (older cache keys stay)."""
    return "" if precision == "fp32" else f"|{precision}"


def _weights_id(spec: str, revision: str | None = None) -> str:
    """Everything that changes the outputs: a folder's files by content (config, tokenizer,
    processor, weights), a hub model by its commit."""
    from negbench.core.filehash import files_digest

    p = Path(spec).expanduser()
    if p.is_dir():
        files = [f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")]
        return f"dir:{files_digest(files, root=p)}"
    return f"hub:{spec}@{revision or cached_hub_commit(spec) or 'unknown-revision'}"


def identity_of(spec: str) -> str:
    """The identity string a loaded 'hf:SPEC' adapter reports, without loading the model."""
    return f"hf|{_weights_id(spec)}"


def identity(spec: str, precision: str = "fp32") -> str | None:
    """HFAdapter.identity() of 'HUB_ID' or '/local/dir' without loading the model (the
    MODEL_IDENTITIES entry, for lazy loading)."""
    return identity_of(spec) + _precision_tag(precision)


def load(spec: str, device: torch.device | str | None = None, precision: str = "fp32") -> HFAdapter:
    """'HUB_ID' or '/local/dir' -> HFAdapter on `device`."""
    from negbench.models.base import pick_device

    try:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ConfigError("hf models need transformers: pip install 'negbench[hf]'") from exc
    device = pick_device(str(device) if device is not None else None)
    local = Path(spec).expanduser()
    if (spec.startswith(("/", ".", "~")) or local.exists()) and not local.is_dir():
        raise ConfigError(f"hf model folder not found: {local}")
    source = str(local.resolve()) if local.is_dir() else spec
    try:
        model = AutoModel.from_pretrained(source)
        image_processor = AutoImageProcessor.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load hf model {spec!r}: {str(exc).splitlines()[0][:300]}") from None
    for needed in ("get_image_features", "get_text_features"):
        if not hasattr(model, needed):
            raise ConfigError(f"hf model {spec!r} ({type(model).__name__}) has no {needed}; "
                              f"need a dual encoder such as CLIPModel or SiglipModel")
    return HFAdapter(model, image_processor, tokenizer, model_string=f"hf:{spec}",
                     weights_id=_weights_id(spec, getattr(model.config, "_commit_hash", None)),
                     device=device, precision=precision)
