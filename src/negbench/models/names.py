"""One name per model: a model string whose local paths are resolved.

`builtin:demo-out/models/pretrained`, `builtin:./demo-out/models/pretrained/` and
`builtin:/home/me/demo-out/models/pretrained` name the same weights. The engine records the
canonical form (results folder, `model` field), and `negbench table` / the report compare in it,
so one model is one row however its path was spelled. Only paths that exist here are resolved:
hub ids (`hf:openai/clip-vit-base-patch32`), pretrained tags (`openclip:ViT-B-32@openai`) and
endpoints (`vlm:openai:MODEL@URL`) stay as written, as does a model string that does not parse
(loading it names the problem).

Pure string and path work: importing this module imports no model library.
"""
from __future__ import annotations

from pathlib import Path

from negbench.core.errors import ConfigError


def resolved_path(text: str) -> str:
    """`text` as an absolute path with symlinks resolved when it names something on this machine."""
    if not text or "://" in text:
        return text
    path = Path(text).expanduser()
    try:
        return str(path.resolve()) if path.exists() else text
    except (OSError, RuntimeError):   # a symlink loop, an unreadable parent: keep what was written
        return text


def _openclip(spec: str) -> str:
    """'ARCH@TAG_OR_PATH' and 'local-dir:PATH[@...]': the checkpoint path and the local dir resolved."""
    arch, at, src = spec.partition("@")
    schema, colon, where = arch.partition(":")
    if colon and schema == "local-dir":
        arch = f"local-dir:{resolved_path(where.strip())}"
    return f"{arch}{at}{resolved_path(src.strip()) if src else src}"


def _vlm(spec: str) -> str:
    """'hf:DIR[#qualifier]': the folder resolved; 'openai:MODEL@URL' as written."""
    from negbench.models.vlm.base import _QUALIFIER

    m = _QUALIFIER.search(spec)
    bare, qualifier = (spec[:m.start()], spec[m.start():]) if m else (spec, "")
    backend, sep, rest = bare.partition(":")
    if backend != "hf" or not sep:
        return spec
    return f"hf:{resolved_path(rest)}{qualifier}"


def _negaware(spec: str) -> str:
    """'METHOD[,OPTIONS]:BASE': the base model string made canonical, the options as written."""
    from negbench.models.negaware import parse_spec

    try:
        _, base = parse_spec(spec)
    except ConfigError:
        return spec
    if not spec.endswith(base):
        return spec
    return spec[:len(spec) - len(base)] + canonical_model_string(base)


_BY_BACKEND = {"builtin": resolved_path, "hf": resolved_path, "openclip": _openclip, "vlm": _vlm,
               "negaware": _negaware}


def canonical_model_string(model: str) -> str:
    """The model string with every local path it names resolved (idempotent); backends this
    module does not know, and strings that are not BACKEND:SPEC, come back as given."""
    backend, sep, spec = model.partition(":")
    canonical = _BY_BACKEND.get(backend) if sep and spec else None
    if canonical is None:
        return model
    spec_out = canonical(spec)
    return model if spec_out == spec else f"{backend}:{spec_out}"
