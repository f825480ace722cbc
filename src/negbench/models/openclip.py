"""open_clip adapter: model strings 'openclip:ARCH@TAG', 'openclip:ARCH@/path/ckpt.pt', 'openclip:ARCH@random'.

- ARCH is any open_clip architecture (`open_clip.list_models()`), e.g. ViT-B-32, or a
  schema name open_clip understands ('hf-hub:org/repo', 'local-dir:/dir').
- TAG is an open_clip pretrained tag (openai, laion2b_s34b_b79k, ...), resolved by open_clip
  (downloaded on first use unless already cached).
- A path (.pt/.pth/.bin/.safetensors) loads a local checkpoint: a bare state dict, or a
  training checkpoint with a 'state_dict' key (NegCLIP, ConCLIP, open_clip_train), with any
  DDP 'module.' prefixes stripped. torch.load always runs with weights_only=True.
- '@random' builds randomly initialised weights, seeded, for tests and benchmarks. A bare
  'ARCH' (tag forgotten) is an error listing the architecture's tags: random weights would
  otherwise write plausible-looking numbers.

The QuickGELU pitfall: OpenAI's CLIP weights (and models fine-tuned from them, like NegCLIP)
were trained with QuickGELU; open_clip's plain 'ViT-B-32' config uses GELU. Loading such a
checkpoint from a path into the plain config runs silently but scores worse, so we warn and
point to 'ARCH-quickgelu'.
"""
from __future__ import annotations

import difflib
import logging
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import torch

from negbench.core.errors import ConfigError
from negbench.models.base import ModelAdapter, error_summary, precision_dtype

log = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
RANDOM_SEED = 0


def _import_open_clip():
    try:
        import open_clip
    except ImportError as exc:
        raise ConfigError("openclip models need open_clip: pip install 'negbench[openclip]'") from exc
    return open_clip


def _looks_like_path(src: str) -> bool:
    return (os.sep in src or "/" in src or src.startswith((".", "~"))
            or src.lower().endswith(WEIGHT_SUFFIXES) or Path(src).expanduser().exists())


def load_state_dict_file(path) -> dict[str, torch.Tensor]:
    """A checkpoint file -> a plain state dict (weights_only load; 'state_dict' key; 'module.' stripped)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise ConfigError(f"{path}: unreadable safetensors file (truncated or not safetensors): "
                              f"{error_summary(exc, 300)}") from None
    else:
        from negbench.core.checkpoints import load_tensors

        obj = load_tensors(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path}: not a state dict (expected name -> tensor, or a dict with 'state_dict')")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def _apply_state_dict(model, state_dict: dict, path) -> None:
    """open_clip's own checkpoint massaging (factory.load_checkpoint) on an already-loaded dict."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    state_dict = convert_state_dict(model, state_dict)
    if "positional_embedding" in state_dict and not hasattr(model, "positional_embedding"):
        state_dict = convert_to_custom_text_state_dict(state_dict)
    for name in ("logit_scale", "logit_bias"):
        target = getattr(model, name, None)
        if name in state_dict and target is not None and target.ndim != state_dict[name].ndim:
            state_dict[name] = state_dict[name].reshape(target.shape)
    if "logit_bias" not in state_dict and getattr(model, "logit_bias", None) is not None:
        state_dict["logit_bias"] = torch.zeros_like(state_dict["logit_scale"])
    state_dict.pop("text.transformer.embeddings.position_ids", None)
    resize_pos_embed(state_dict, model)
    resize_text_pos_embed(state_dict, model)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{path}: weights do not fit this architecture (wrong ARCH?): "
                          f"{error_summary(exc, 400)}") from None


def _warn_quickgelu(open_clip, arch: str, model_cfg: dict | None, path) -> None:
    if arch.endswith("-quickgelu") or (model_cfg or {}).get("quick_gelu"):
        return
    try:
        tags = open_clip.list_pretrained_tags_by_model(arch)
    except Exception:  # noqa: BLE001 - a listing problem must not stop loading
        tags = []
    if "openai" in tags:
        msg = (f"loading {path} into open_clip '{arch}' (GELU). If these weights come from OpenAI CLIP "
               f"(e.g. NegCLIP, ConCLIP fine-tunes), they need QuickGELU: use 'openclip:{arch}-quickgelu@{path}'")
        warnings.warn(msg, stacklevel=3)
        log.warning(msg)


class _QuietOpenClip(logging.Filter):
    """open_clip logs its construction steps on the root logger at INFO, and 'No pretrained
    weights loaded' whenever it builds an architecture we are about to fill from a checkpoint
    (or want random on purpose); both only mislead a user reading `negbench eval` output."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_open_clip = f"{os.sep}open_clip{os.sep}" in (record.pathname or "")
        if from_open_clip and record.levelno < logging.WARNING:
            return False
        msg = record.getMessage()
        # a failed download is re-raised as one ConfigError line; logging it too says it twice
        return "No pretrained weights loaded" not in msg and not (from_open_clip and msg.startswith("Failed to download"))


class _quiet_open_clip:
    def __enter__(self):
        self.filt = _QuietOpenClip()
        logging.getLogger().addFilter(self.filt)

    def __exit__(self, *exc):
        logging.getLogger().removeFilter(self.filt)


def _create_unloaded(open_clip, arch: str):
    with _quiet_open_clip():
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    return model, preprocess


def _causal_text_tower(model) -> "dict | None":
    """The pieces of a causal, EOT-pooled text tower (CLIP's own text transformer, or a
    CustomTextCLIP's TextTransformer), or None when its output can depend on padding.

    With a causal mask and pooling at the end-of-text token, the pooled row only sees the
    tokens up to that token, so cutting the padding after it changes nothing. SigLIP-style
    towers (no causal mask, last-token pooling), padding masks and CoCa's appended class token
    break that, and keep the full context.
    """
    tower = getattr(model, "text", None)
    if tower is None or not hasattr(tower, "token_embedding"):
        tower = model
    pool = getattr(tower, "text_pool_type", None) or getattr(tower, "pool_type", None)
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
    if any(getattr(tower, name, None) is None for name in needed) or pool not in ("argmax", "eos"):
        return None
    if getattr(tower, "cls_emb", None) is not None or getattr(tower, "use_pad_mask", False):
        return None
    eos_id = getattr(tower, "text_eos_id", None) or getattr(tower, "eos_id", None)
    if pool == "eos" and eos_id is None:
        return None
    return {"tower": tower, "pool": pool, "eos_id": eos_id}


def _encode_text_at_batch_length(parts: dict, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's encode_text on tokens cut after the batch's last end-of-text token."""
    from open_clip.transformer import text_global_pool

    tower, pool, eos_id = parts["tower"], parts["pool"], parts["eos_id"]
    end = tokens.argmax(dim=-1) if pool == "argmax" else (tokens == eos_id).int().argmax(dim=-1)
    length = int(end.max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast_dtype) + tower.positional_embedding[:length].to(cast_dtype)
    x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
    x = text_global_pool(tower.ln_final(x), tokens, pool, eos_token_id=eos_id)
    projection = getattr(tower, "text_projection", None)
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


class OpenClipAdapter(ModelAdapter):
    """An open_clip CLIP / CustomTextCLIP model behind the ModelAdapter interface.

    `weights_tag` is part of identity(); a trainer that changes the weights in place sets it
    (e.g. to the step) so cached embeddings of older weights are never reused.
    """

    def __init__(self, model, preprocess, tokenizer, *, arch: str, weights_id: str,
                 device: torch.device, precision: str = "fp32"):
        # bf16/fp16: the weights are cast once here, inputs follow (see models/base.py)
        self.dtype = precision_dtype(precision)
        self.module = model.to(device=device, dtype=self.dtype).eval()
        self.transform = preprocess
        self.tokenizer = tokenizer
        self.model_string = f"openclip:{arch}"   # load_model sets the exact string it was given
        self.arch = arch
        self.weights_id = weights_id
        self.weights_tag: str | None = None
        self.device = device
        self.precision = precision

    def identity(self) -> str:  # keep equal to identity(spec) below for an unchanged model
        tag = f"|{self.weights_tag}" if self.weights_tag else ""
        return f"openclip|{self.arch}#{_config_digest(self.arch)}|{self.weights_id}{tag}{_precision_tag(self.precision)}"

    def preprocess_id(self) -> str:
        return f"openclip|{self.transform!r}"

    def preprocess(self, image) -> torch.Tensor:
        return self.transform(image)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(pixels.to(device=self.device, dtype=self.dtype))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        parts = _causal_text_tower(self.module)
        if parts is None:
            return self.module.encode_text(tokens)
        return _encode_text_at_batch_length(parts, tokens)

    def text_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens up to the end-of-text token (what encode_texts runs), for batching by length."""
        parts = _causal_text_tower(self.module)
        if parts is None:
            return [len(t) for t in texts]
        tokens = self.tokenizer(list(texts))
        end = tokens.argmax(dim=-1) if parts["pool"] == "argmax" else (tokens == parts["eos_id"]).int().argmax(dim=-1)
        return (end + 1).tolist()

    def logit_scale(self) -> torch.Tensor:
        return self.module.logit_scale.exp()

    def tower_parameters(self, tower: str) -> Iterator[torch.nn.Parameter]:
        if tower not in ("image", "text"):
            raise ConfigError(f"tower {tower!r} not in ['image', 'text']")
        for name, p in self.module.named_parameters():
            is_image = name.startswith("visual.")
            if name in ("logit_scale", "logit_bias"):
                continue
            if is_image == (tower == "image"):
                yield p

    def save(self, path) -> str:
        """Write an open_clip-loadable checkpoint ({'state_dict': ...}); returns its model string.

        `path` is a file (.pt/.pth/.bin or .safetensors) or a folder (then
        folder/open_clip_pytorch_model.bin).
        """
        from negbench.core.io import atomic_path

        path = Path(path).expanduser()
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            path = path / "open_clip_pytorch_model.bin"
        state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        with atomic_path(path) as tmp:
            if path.suffix == ".safetensors":
                from negbench.models.safetensors_io import save_safetensors

                save_safetensors(state, tmp)
            else:
                torch.save({"state_dict": state, "arch": self.arch}, tmp)
        return f"openclip:{self.arch}@{path.resolve()}"


def _precision_tag(precision: str) -> str:
    """Cast weights give other embeddings: part of identity(), empty for fp32 (older cache keys stay)."""
    return "" if precision == "fp32" else f"|{precision}"


def _missing_tag_message(open_clip, arch: str) -> str:
    tags = open_clip.list_pretrained_tags_by_model(arch)
    listed = ", ".join(tags) if tags else "none (this architecture has no published weights)"
    return (f"openclip model 'openclip:{arch}' names no weights: add @TAG, @/path/to/checkpoint.pt or "
            f"@random. Pretrained tags for {arch}: {listed}")


def _weights_id(arch: str, src: str) -> str:
    """What the weights are, by content where they are local: a checkpoint file's blake2b, a
    local-dir's files; a pretrained tag by name (open_clip pins each tag to one file);
    random weights by their seed. The architecture's config is hashed in by identity_of."""
    from negbench.core.filehash import file_digest, files_digest

    if arch.startswith("local-dir:"):
        d = Path(arch[len("local-dir:"):]).expanduser()
        files = [f for f in d.rglob("*") if f.is_file()] if d.is_dir() else []
        return f"dir:{files_digest(files, root=d)}"
    if src and src != "random" and _looks_like_path(src):
        return f"file:{file_digest(Path(src).expanduser().resolve())}"
    if src and src != "random" or arch.startswith("hf-hub:"):
        return f"tag:{src}"
    return f"random:{RANDOM_SEED}"


def _config_digest(arch: str) -> str:
    import hashlib
    import json

    if arch.startswith(("hf-hub:", "local-dir:")):
        return "schema"
    cfg = _import_open_clip().get_model_config(arch)
    return hashlib.blake2b(json.dumps(cfg, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def identity_of(spec: str) -> str:
    """The identity string a loaded 'openclip:SPEC' adapter reports, without building the model."""
    arch, _, src = spec.partition("@")
    arch, src = arch.strip(), src.strip()
    return f"openclip|{arch}#{_config_digest(arch)}|{_weights_id(arch, src)}"


def identity(spec: str, precision: str = "fp32") -> str | None:
    """OpenClipAdapter.identity() of 'ARCH@TAG_OR_PATH' without building the model (the
    MODEL_IDENTITIES entry, for lazy loading); None when the checkpoint is missing."""
    _, _, src = spec.partition("@")
    src = src.strip()
    if src and src != "random" and _looks_like_path(src) and not Path(src).expanduser().is_file():
        return None  # load() names the missing file
    return identity_of(spec) + _precision_tag(precision)


def load(spec: str, device: torch.device | str | None = None, precision: str = "fp32") -> OpenClipAdapter:
    """'ARCH@TAG_OR_PATH' (or 'ARCH@random') -> OpenClipAdapter on `device`."""
    from negbench.models.base import pick_device

    open_clip = _import_open_clip()
    device = pick_device(str(device) if device is not None else None)
    arch, _, src = spec.partition("@")
    arch, src = arch.strip(), src.strip()
    if not arch:
        raise ConfigError(f"openclip model {spec!r} must look like ARCH@TAG_OR_PATH, e.g. ViT-B-32@openai")
    schema = arch.startswith(("hf-hub:", "local-dir:"))
    model_cfg = None if schema else open_clip.get_model_config(arch)
    if not schema and model_cfg is None:
        names = open_clip.list_models()
        close = difflib.get_close_matches(arch, names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown open_clip architecture {arch!r}{hint} "
                          f"(see open_clip.list_models(), {len(names)} available)")
    if not src and not schema:
        raise ConfigError(_missing_tag_message(open_clip, arch))
    model_string = f"openclip:{spec}"
    path = None
    if src and src != "random" and _looks_like_path(src):
        path = Path(src).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"checkpoint not found: {path} (from model {model_string!r})")
    try:
        if path is not None:
            state_dict = load_state_dict_file(path)
            model, preprocess = _create_unloaded(open_clip, arch)
            _warn_quickgelu(open_clip, arch, model_cfg, path)
            _apply_state_dict(model, state_dict, path)
        elif src != "random" or schema:
            with _quiet_open_clip():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=src or None, require_pretrained=True)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_SEED)
                model, preprocess = _create_unloaded(open_clip, arch)
        with _quiet_open_clip():
            tokenizer = open_clip.get_tokenizer(arch)
    except ConfigError:
        raise
    except RuntimeError as exc:
        if "pretrained" in str(exc).lower() or "download" in str(exc).lower():
            tags = open_clip.list_pretrained_tags_by_model(arch) if not schema else []
            why = (f"{src!r} is a known tag for {arch}, but its weights are neither in the local cache nor "
                   "downloadable here (offline?)" if src in tags else f"known tags for {arch}: {tags}")
            raise ConfigError(f"cannot load open_clip weights {src!r} for {arch!r}: {why}. "
                              f"(open_clip said: {error_summary(exc, 300)})") from None
        raise
    except OSError as exc:  # offline / missing hub files
        raise ConfigError(f"cannot load open_clip model {model_string!r}: {exc}") from None
    adapter = OpenClipAdapter(model, preprocess, tokenizer, arch=arch, weights_id=_weights_id(arch, src),
                              device=device, precision=precision)
    adapter.model_string = model_string
    return adapter
