"""The catalogue of known negation-relevant checkpoints (src/negbench/data/models.yaml).

Each entry: id, name, paper, model (the negbench model string; PATH = where you put the
downloaded weights), optional `also` (other strings), format (QuickGELU / file-format notes),
weights (where they are published), published_as (the model's name in the published-numbers
CSV, or null). Reading it imports nothing heavy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from negbench.core.errors import ConfigError

CATALOG_FILE = Path(__file__).parent.parent / "data" / "models.yaml"
REQUIRED = ("id", "name", "paper", "model", "format", "weights")


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    paper: str
    model: str
    format: str
    weights: str
    published_as: str | None = None
    also: tuple[str, ...] = field(default_factory=tuple)


def _entry(path: Path, i: int, rec) -> CatalogEntry:
    if not isinstance(rec, dict):
        raise ConfigError(f"{path}: models[{i}] must be a mapping, got {type(rec).__name__}")
    missing = [k for k in REQUIRED if not isinstance(rec.get(k), str) or not rec[k].strip()]
    if missing:
        raise ConfigError(f"{path}: models[{i}] ({rec.get('id')!r}) lacks {missing}")
    unknown = sorted(set(rec) - set(CatalogEntry.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"{path}: models[{i}] ({rec['id']!r}) has unknown keys {unknown}")
    return CatalogEntry(**{**rec, "also": tuple(rec.get("also") or ())})


def load_catalog(path: str | Path = CATALOG_FILE) -> tuple[list[CatalogEntry], list[dict]]:
    """-> (entries, extra published rows) from the catalogue YAML."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the model catalogue: {exc}") from None
    entries = [_entry(path, i, rec) for i, rec in enumerate(doc.get("models") or [])]
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: duplicate model ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return entries, list(doc.get("published") or [])
