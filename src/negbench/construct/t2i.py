"""Text-to-image generators for HardNeg-Syn: any diffusers pipeline, named by one string.

    diffusers:stabilityai/sd-turbo        a hub id (downloaded by diffusers unless HF_HUB_OFFLINE=1)
    diffusers:/path/to/saved/pipeline     a folder written by `DiffusionPipeline.save_pretrained`

The pipeline is loaded with `DiffusionPipeline.from_pretrained`, so whatever class its
`model_index.json` names runs (Stable Diffusion 1.x/2.x, SD-Turbo, SDXL, PixArt, ...). Every image
gets its own seeded `torch.Generator`: an image depends on (prompt, seed, settings) and on the
batch it was made in only through floating-point kernel order, which a resumed run repeats
because it redoes whole batches (negbench.construct.hardneg_syn).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from negbench.core.errors import ConfigError

PREFIX = "diffusers:"
PRECISIONS = ("fp32", "fp16", "bf16")
EXAMPLE = "diffusers:stabilityai/sd-turbo or diffusers:/path/to/pipeline_folder"


def parse_generator(text: str) -> str:
    """'diffusers:ID_OR_DIR' -> 'ID_OR_DIR'; ConfigError naming the value otherwise."""
    if not isinstance(text, str) or not text.startswith(PREFIX) or not text[len(PREFIX):].strip():
        raise ConfigError(f"--generator {text!r}: expected diffusers:ID_OR_DIR, e.g. {EXAMPLE}")
    return text[len(PREFIX):].strip()


@dataclass(frozen=True)
class GenerationSettings:
    """What the pipeline is asked for besides the prompts (recorded in the manifest)."""
    steps: int | None = None           # num_inference_steps; None: the pipeline's default
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None

    def call_kwargs(self) -> dict:
        out = {"num_inference_steps": self.steps, "guidance_scale": self.guidance_scale,
               "height": self.height, "width": self.width}
        return {k: v for k, v in out.items() if v is not None}


def _dtype(precision: str, device: str):
    import torch
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: allowed {', '.join(PRECISIONS)}")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ConfigError("--precision fp16 needs a GPU (--device cuda); use fp32 (or bf16) on the CPU")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def _config_digest(folder: Path) -> str | None:
    """sha256 over a local pipeline's JSON configs and its weight files' names and sizes:
    cheap (no pass over gigabytes of weights) and changes whenever the pipeline does."""
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(folder).as_posix()
        h.update(rel.encode())
        h.update(p.read_bytes() if p.suffix in (".json", ".txt") else str(p.stat().st_size).encode())
    return h.hexdigest()


def _quiet_unless_verbose() -> None:
    """diffusers' loading bars and INFO lines only with -v (negbench.cli.configure_output sets
    TRANSFORMERS_VERBOSITY=error otherwise), as for transformers."""
    if os.environ.get("TRANSFORMERS_VERBOSITY") == "error":
        from diffusers.utils import logging as dlog
        from transformers.utils import logging as tlog
        for lib in (dlog, tlog):     # the text encoder loads through transformers, with its own bar
            lib.set_verbosity_error()
            lib.disable_progress_bar()


class DiffusersGenerator:
    """One loaded pipeline; `generate(prompts, negative_prompts, seeds)` -> PIL images."""

    def __init__(self, spec: str, *, device: str | None = None, precision: str = "fp32",
                 settings: GenerationSettings = GenerationSettings()):
        import torch
        self.spec, self.source = spec, parse_generator(spec)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.precision, self.settings = precision, settings
        self.pipe = self._load(_dtype(precision, self.device))
        params = inspect.signature(self.pipe.__call__).parameters
        # why: not every text-to-image pipeline takes a negative prompt or a guidance scale;
        # what it cannot take is left out and recorded, never silently passed and ignored
        self.supported = {k for k in ("negative_prompt", "guidance_scale", "num_inference_steps", "height", "width")
                          if k in params}

    def _load(self, dtype):
        from diffusers import DiffusionPipeline
        local = Path(self.source).expanduser()
        target = str(local) if local.exists() else self.source
        if local.exists() and not (local / "model_index.json").is_file():
            raise ConfigError(f"--generator {self.spec!r}: {local} is not a diffusers pipeline folder "
                              f"(no model_index.json)")
        _quiet_unless_verbose()
        try:
            with warnings.catch_warnings():
                # newer diffusers call it `dtype` and warn about `torch_dtype`; older ones know only
                # `torch_dtype`: one spelling for every version, without the warning
                warnings.simplefilter("ignore", FutureWarning)
                pipe = DiffusionPipeline.from_pretrained(target, torch_dtype=dtype)
        except (OSError, ValueError, TypeError, ImportError, AttributeError, KeyError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"--generator {self.spec!r}: cannot load a diffusers pipeline from {target!r}: "
                              f"{first}") from None
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @property
    def identity(self) -> dict:
        """What decides the pixels: recorded in the manifest and in the resume fingerprint."""
        import diffusers
        local = Path(self.source).expanduser()
        return {"generator": self.spec, "pipeline_class": type(self.pipe).__name__,
                "scheduler": type(self.pipe.scheduler).__name__ if hasattr(self.pipe, "scheduler") else None,
                "config_digest": _config_digest(local) if local.exists() else None,
                "hub_id": None if local.exists() else self.source,
                "diffusers_version": diffusers.__version__, "precision": self.precision,
                "device_type": self.device.split(":")[0]}

    def unsupported(self) -> list[str]:
        asked = {"negative_prompt"} | set(self.settings.call_kwargs())
        return sorted(asked - self.supported)

    def generate(self, prompts: Sequence[str], negative_prompts: Sequence[str], seeds: Sequence[int]):
        """One pipeline call over the batch; image i from torch.Generator seeded with seeds[i]."""
        import torch
        gen_device = "cpu" if self.device == "mps" else self.device
        generators = [torch.Generator(gen_device).manual_seed(int(s)) for s in seeds]
        kwargs = {k: v for k, v in self.settings.call_kwargs().items() if k in self.supported}
        if "negative_prompt" in self.supported and any(negative_prompts):
            kwargs["negative_prompt"] = list(negative_prompts)
        with torch.inference_mode():
            out = self.pipe(prompt=list(prompts), generator=generators, output_type="pil", **kwargs)
        images = list(out.images)
        if len(images) != len(prompts):
            raise ConfigError(f"--generator {self.spec!r}: asked for {len(prompts)} images, got {len(images)}")
        return images


def describe_settings(gen: DiffusersGenerator) -> dict:
    """The guidance settings as the pipeline ran them (its defaults where none was given)."""
    params = inspect.signature(gen.pipe.__call__).parameters
    out = {}
    for k in ("num_inference_steps", "guidance_scale", "height", "width"):
        given = gen.settings.call_kwargs().get(k)
        default = params[k].default if k in params and params[k].default is not inspect.Parameter.empty else None
        out[k] = given if given is not None else default
    return json.loads(json.dumps(out, default=str))
