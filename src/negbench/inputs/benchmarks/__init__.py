"""Importers for the other negation benchmarks: released files -> negbench task files + task YAML.

Each benchmark is one module registered here by name (lazily, so importing this package
imports none of them); `import_benchmark(NAME, src, out)` writes the task files and
`OUT/<name>.yaml`, which `negbench eval --tasks-file` (or --data-root scanning) registers.
Every module's docstring cites the release files its layout was taken from.
"""
from __future__ import annotations

from pathlib import Path

from negbench.core.registry import Registry
from negbench.inputs.benchmarks.common import BenchmarkFileError, ImportResult

BENCHMARKS: Registry = Registry.of("benchmark", {
    name: f"negbench.inputs.benchmarks.{name}:import_{name}" for name in ("ccneg", "valse", "spec", "negvqa",
                                                                          "sugarcrepe")})

__all__ = ["BENCHMARKS", "BenchmarkFileError", "ImportResult", "import_benchmark"]


def import_benchmark(name: str, src: str | Path, out: str | Path, *, image_root: str | Path | None = None,
                     skip_invalid: bool = False) -> ImportResult:
    """Read benchmark `name`'s released files at `src`; write task files + `<name>.yaml` into `out`.

    image_root: the folder the release's image paths are relative to (default: next to the files).
    skip_invalid: skip malformed entries (listed in the result and the manifests) instead of stopping.
    """
    from negbench.core.errors import ConfigError

    importer = BENCHMARKS.get(name.lower())
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not src.exists():   # checked before --out is made: a typo leaves no empty folder behind
        raise ConfigError(f"--src {src}: no such file or folder")
    made = [p for p in (out, *out.parents) if not p.exists()]   # deepest first
    out.mkdir(parents=True, exist_ok=True)
    try:
        return importer(src, out, image_root=Path(image_root).expanduser() if image_root else None,
                        skip_invalid=skip_invalid)
    except BaseException:
        if made:
            _remove_empty_folders(out)
            for parent in made[1:]:   # the parents --out needed, if nothing else went there
                try:
                    parent.rmdir()
                except OSError:
                    break
        raise


def _remove_empty_folders(top: Path) -> None:
    """`top` and the folders under it that hold no file (made by an import that then failed)."""
    import os

    for folder in sorted((walked[0] for walked in os.walk(top)), key=len, reverse=True):
        try:
            os.rmdir(folder)
        except OSError:   # holds something: kept
            pass
