"""Random-weight diffusers pipelines built from configs, saved as a folder `--generator` can load.

No weights can be downloaded where negbench is tested, so the HardNeg-Syn build is tested and
timed with Stable Diffusion pipelines whose parts are made from configs with random weights:

- `tiny`:  32x32 images, a 2-block UNet of width 32 (the tests; ~3 MB);
- `small`: 64x64 images, UNet widths 64/128 (a CPU speed figure with a little more work);
- `sd-turbo-size`: the layout of SD-Turbo / SD 2.1 base (UNet 320-640-1280-1280, a 23-layer
  1024-wide text encoder, 4-level VAE), 512x512; GPU speed of a real-size architecture.

The tokenizer is a CLIPTokenizer over a vocabulary built here (lower-case letters, digits and a
few marks, each also as a word end; no merges): every word becomes its letters, which is enough
for random weights. Images from these pipelines are noise; only shapes and speed are real.
"""
from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

ARCHS = {
    "tiny": {"size": 32, "unet": {"block_out_channels": (32, 64), "layers_per_block": 1, "attention_head_dim": 4,
                                  "cross_attention_dim": 32, "norm_num_groups": 8},
             "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
             "vae": {"block_out_channels": (16, 16), "layers_per_block": 1, "norm_num_groups": 8}},
    "small": {"size": 64, "unet": {"block_out_channels": (64, 128), "layers_per_block": 1, "attention_head_dim": 8,
                                   "cross_attention_dim": 64, "norm_num_groups": 16},
              "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4},
              "vae": {"block_out_channels": (32, 32), "layers_per_block": 1, "norm_num_groups": 16}},
    "sd-turbo-size": {"size": 512, "unet": {"block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2,
                                            "attention_head_dim": (5, 10, 20, 20), "cross_attention_dim": 1024,
                                            "norm_num_groups": 32, "use_linear_projection": True},
                      "text": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23,
                               "num_attention_heads": 16, "hidden_act": "gelu"},
                      "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2,
                              "norm_num_groups": 32}},
}
MAX_TOKENS = 77


def char_tokenizer(folder: Path):
    """A CLIPTokenizer whose vocabulary is single characters (and their word-end forms)."""
    from transformers import CLIPTokenizer
    chars = string.ascii_lowercase + string.digits + ".,'-!?"
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS)


def _unet(cfg: dict, size: int, latent_scale: int):
    from diffusers import UNet2DConditionModel
    n = len(cfg["block_out_channels"])
    down = ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1)
    return UNet2DConditionModel(sample_size=size // latent_scale, in_channels=4, out_channels=4,
                                down_block_types=down, up_block_types=up, **cfg)


def _vae(cfg: dict, size: int):
    from diffusers import AutoencoderKL
    n = len(cfg["block_out_channels"])
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=size,
                         down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n, **cfg)


def save_random_pipeline(out, arch: str = "tiny", seed: int = 0) -> Path:
    """Build a StableDiffusionPipeline of `arch` with random weights (seeded) and save it to `out`."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    if arch not in ARCHS:
        from negbench.core.errors import ConfigError
        raise ConfigError(f"unknown random pipeline {arch!r}; available: {', '.join(ARCHS)}")
    spec, out = ARCHS[arch], Path(out)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as vocab_dir:   # the saved pipeline keeps its own copy
        tok = char_tokenizer(Path(vocab_dir))
    vae = _vae(spec["vae"], spec["size"])
    latent_scale = 2 ** (len(spec["vae"]["block_out_channels"]) - 1)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), max_position_embeddings=MAX_TOKENS,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.pad_token_id, **spec["text"]))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="trailing", steps_offset=1)
    pipe = StableDiffusionPipeline(unet=_unet(spec["unet"], spec["size"], latent_scale), vae=vae, text_encoder=text,
                                   tokenizer=tok, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(out)
    return out
