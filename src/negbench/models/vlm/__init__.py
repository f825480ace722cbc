"""Generative vision-language models (LLaVA-style, Qwen-VL, SmolVLM, served endpoints) for NegBench.

Model strings: `vlm:hf:ID_OR_DIR` (transformers image-text-to-text models, see hf.py) and
`vlm:openai:MODEL@URL` (OpenAI-compatible chat endpoints, see openai.py). They go through the
one evaluation path (negbench.evaluation.engine), which asks them to answer instead of embed.
"""
from __future__ import annotations


def identity_of(spec: str) -> str:
    """What a `vlm:SPEC` model is, without loading it (part of a result's fingerprint): a local
    folder by the content of its files, a hub id or an endpoint by its name."""
    from pathlib import Path

    from negbench.core.fingerprint import folder_or_file_digest
    from negbench.models.vlm.base import split_qualifier, split_vlm_spec

    backend, rest = split_vlm_spec(split_qualifier(spec)[0])
    folder = Path(rest).expanduser()
    if backend == "hf" and folder.is_dir():
        return f"vlm:hf:{folder_or_file_digest(folder)}"
    return f"vlm:{backend}:{rest}"
