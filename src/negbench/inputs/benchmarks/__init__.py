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
    importer = BENCHMARKS.get(name.lower())
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    return importer(Path(src).expanduser(), out, image_root=Path(image_root).expanduser() if image_root else None,
                    skip_invalid=skip_invalid)
