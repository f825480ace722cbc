"""torch checkpoints loaded the safe way, with errors that say what happened."""
from __future__ import annotations

from pathlib import Path

from negbench.core.errors import ConfigError


def load_tensors(path):
    """torch.load(path, weights_only=True) on the CPU; a refusal or a broken file -> ConfigError."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickles with code objects, TorchScript archives, truncation
        raise _checkpoint_error(Path(path), exc) from None


def _checkpoint_error(path: Path, exc: Exception) -> ConfigError:
    """Why torch.load(weights_only=True) refused, in our words: torch's own message ends with
    advice to set weights_only=False, which would run whatever code the file carries."""
    import pickle
    import re

    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        found = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
        what = f" (it references {', '.join(found)})" if found else ""
        return ConfigError(f"{path}: refused: the checkpoint holds pickled Python objects other than "
                           f"tensors{what}, which could run code when loaded. negbench loads only plain "
                           f"tensor checkpoints; for OpenAI's TorchScript files use the open_clip tag, e.g. "
                           f"'openclip:ViT-B-32-quickgelu@openai'")
    return ConfigError(f"{path}: unreadable checkpoint (truncated or not a torch file): {type(exc).__name__}: "
                       f"{text.splitlines()[0][:200] if text else ''}")
