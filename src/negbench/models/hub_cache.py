"""What the local Hugging Face hub cache holds, read without loading a model or going online."""
from __future__ import annotations

from pathlib import Path


def cached_hub_commit(repo_id: str) -> str | None:
    """The commit the local hub cache resolves `repo_id` to (refs/main); None when it holds none."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return None
    ref = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None
