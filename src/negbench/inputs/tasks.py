"""Task specs (frozen dataclasses loaded from YAML) and the registry of tasks and suites.

A task file names one NegBench CSV and says how to score it. Adding a dataset variant
means adding a YAML entry, not a code branch. YAML layout:

    tasks:
      - name: coco_mcq
        kind: mcq               # mcq | binary-mcq | retrieval | t2i-selection
        modality: image         # image | video
        file: COCO_val_mcq_llama3.1_rephrased.csv
        group: COCO             # dataset family, used by reports
        variant: paraphrased    # templated | paraphrased | original | control
        negated: true
        benchmark: NegBench     # default; imported benchmarks say CC-Neg, VALSE, SPEC, ...
    suites:
      negbench: [coco_mcq, ...]
      negation-all: [negbench, "?ccneg"]   # "?name": left out (with a warning) when not registered
    include: [other.yaml]       # optional, relative to this file

Relative `file` paths resolve against the eval-time --data-root, else the YAML's folder. Media
paths resolve against the task's `data_root` when its YAML names one (relative to the YAML),
else against --data-root (the built-in suites), else the task file's folder.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from negbench.core.errors import ConfigError
from negbench.core.registry import Registry
from negbench.inputs.kinds import KINDS, TaskKind

log = logging.getLogger(__name__)
MODALITIES = ("image", "video")
VARIANTS = ("templated", "paraphrased", "original", "control")
BUILTIN_TASK_DIR = Path(__file__).parent.parent / "data" / "tasks"
CLEAN_SUFFIX = "@clean"
# the paper's names; 'modified_positive' is the one-object form "This image features A." of Affirmation
DEFAULT_ANSWER_TYPE_NAMES = {"positive": "Affirmation", "negative": "Negation", "hybrid": "Hybrid",
                             "modified_positive": "single-object Affirmation"}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str
    file: str
    modality: str = "image"
    group: str = ""
    variant: str = "templated"
    negated: bool = True
    data_root: str | None = None        # media root named by the YAML (relative to it); wins over --data-root
    spec_dir: str | None = None         # folder of the YAML that defined it
    version: int = 1
    description: str = ""
    # how MCQ option types are named in reports (the paper's Affirmation/Negation/Hybrid)
    answer_type_names: dict = field(default_factory=lambda: dict(DEFAULT_ANSWER_TYPE_NAMES))
    # {OLD: NEW} media path prefix rewrites (the --path-map flag); win over the automatic one
    path_map: dict | None = None
    # leave out rows negbench.inputs.audit flags; only under a name ending in CLEAN_SUFFIX
    exclude_suspicious: bool = False
    benchmark: str = "NegBench"         # the benchmark family the task comes from; tables group by it
    needs_generative: bool = False      # answered by a generative VLM only (e.g. NegVQA)
    # what a task means, as fields (tables and the report read these, never the task's name):
    wording: str = "default"            # the negation wording family (template set), e.g. 'without'
    hard_negative: bool = False         # a hard-negative variant (HardNeg-Syn, hard-negative galleries)
    caption_order: str | None = None    # negated retrieval: 'affneg' (affirmation first) or 'negaff'

    def __post_init__(self):
        if self.exclude_suspicious and not self.name.endswith(CLEAN_SUFFIX):
            raise ConfigError(f"task {self.name!r}: a variant without suspicious rows must be named "
                              f"'{self.name}{CLEAN_SUFFIX}' so its scores are never mistaken for the full task's")
        if self.kind not in KINDS:
            raise ConfigError(f"task {self.name!r}: kind {self.kind!r} not in {KINDS.names()}")
        if self.modality not in MODALITIES:
            raise ConfigError(f"task {self.name!r}: modality {self.modality!r} not in {list(MODALITIES)}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"task {self.name!r}: variant {self.variant!r} not in {list(VARIANTS)}")

    def path_map_pairs(self) -> list[tuple[str, str]]:
        return list((self.path_map or {}).items())

    @property
    def task_kind(self) -> TaskKind:
        return KINDS.get(self.kind)

    @property
    def chance(self) -> float | None:
        return self.task_kind.chance

    def resolve_file(self, data_root: str | Path | None = None) -> Path:
        """The task CSV: absolute as given, else under data_root, else beside the YAML."""
        p = Path(self.file).expanduser()
        if p.is_absolute():
            return p
        for base in (data_root, self.spec_dir, self.data_root):
            if base and (Path(base).expanduser() / p).exists():
                return Path(base).expanduser() / p
        base = data_root or self.spec_dir or self.data_root or "."
        return Path(base).expanduser() / p

    def resolve_media_root(self, data_root: str | Path | None = None) -> Path:
        """The folder the task file's media paths resolve against: the root its YAML names
        (relative to the YAML: built suites, imported benchmarks), which --data-root never
        replaces; else --data-root (the built-in suites); else the task file's folder."""
        if self.data_root:
            root = Path(self.data_root).expanduser()
            return root if root.is_absolute() or not self.spec_dir else Path(self.spec_dir) / root
        if data_root:
            return Path(data_root).expanduser()
        return self.resolve_file().parent

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def clean_variant(spec: TaskSpec) -> TaskSpec:
    """The task without its suspicious rows, under its own name (`coco_mcq@clean`)."""
    if spec.exclude_suspicious:
        return spec
    return dataclasses.replace(spec, name=spec.name + CLEAN_SUFFIX, exclude_suspicious=True)


def with_path_map(spec: TaskSpec, pairs) -> TaskSpec:
    """The spec with --path-map OLD=NEW pairs added to its own path_map."""
    if not pairs:
        return spec
    return dataclasses.replace(spec, path_map={**(spec.path_map or {}), **dict(pairs)})


TASKS: Registry[TaskSpec] = Registry("task")
SUITES: Registry[list] = Registry("suite")
_loaded_files: set[Path] = set()


def _spec_from_mapping(entry: dict, spec_dir: Path, source: Path) -> TaskSpec:
    known = {f.name for f in dataclasses.fields(TaskSpec)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{source}: task {entry.get('name')!r} has unknown keys {unknown}; "
                          f"allowed {sorted(known)}")
    missing = [k for k in ("name", "kind", "file") if k not in entry]
    if missing:
        raise ConfigError(f"{source}: task entry {entry} lacks {missing}")
    return TaskSpec(**{**entry, "spec_dir": entry.get("spec_dir") or str(spec_dir)})


def load_task_file(path: str | Path, *, overwrite: bool = True) -> list[TaskSpec]:
    """Load a task YAML (and its includes) into the registries; returns its specs."""
    import yaml  # light, but only needed here

    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"task spec file not found: {path}")
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs: list[TaskSpec] = []
    for inc in doc.get("include", []) or []:
        specs += load_task_file(path.parent / inc, overwrite=overwrite)
    for entry in doc.get("tasks", []) or []:
        spec = _spec_from_mapping(entry, path.parent, path)
        TASKS.register(spec.name, spec, overwrite=overwrite)
        specs.append(spec)
    for suite, names in (doc.get("suites") or {}).items():
        SUITES.register(suite, list(names), overwrite=overwrite)
    _loaded_files.add(path)
    return specs


def load_builtin_tasks() -> None:
    for path in sorted(BUILTIN_TASK_DIR.glob("*.yaml")):
        if path.resolve() not in _loaded_files:
            load_task_file(path, overwrite=True)


def get_task(name: str) -> TaskSpec:
    load_builtin_tasks()
    return TASKS.get(name)


def expand_tasks(names: list[str] | None = None, suites: list[str] | None = None) -> list[TaskSpec]:
    """Task names and suite names -> ordered unique specs (suites expand recursively). Optional
    members ("?name") that are not registered are left out, said in one warning per suite."""
    specs, left_out = expand_with_left_out(names, suites)
    for suite, members in left_out.items():
        log.warning("suite %r: %s not registered, left out (import with `negbench import-benchmark`, then pass "
                    "the YAML with --tasks-file or keep it under --data-root)", suite, ", ".join(members))
    return specs


def expand_with_left_out(names: list[str] | None = None, suites: list[str] | None = None
                         ) -> tuple[list[TaskSpec], dict[str, list[str]]]:
    """expand_tasks without the warning: (specs, {suite: its optional members not registered})."""
    load_builtin_tasks()
    ordered: list[str] = []
    left_out: dict[str, list[str]] = {}

    def add(name: str, seen: tuple = ()):
        if name.startswith("?"):  # optional suite member, e.g. a benchmark imported only by some users
            name = name[1:]
            if name not in SUITES and name not in TASKS:
                left_out.setdefault(seen[-1] if seen else "?", []).append(name)
                return
        if name in SUITES and name not in TASKS:
            if name in seen:
                raise ConfigError(f"suite {name!r} includes itself")
            for sub in SUITES.get(name):
                add(sub, seen + (name,))
        elif name not in ordered:
            TASKS.get(name)  # raises "unknown task 'x'; did you mean ..."
            ordered.append(name)

    for s in suites or []:
        SUITES.get(s)
        add(s)
    for n in names or []:
        add(n)
    return [TASKS.get(n) for n in ordered], left_out


def check_unique_names(specs: Sequence[TaskSpec]) -> None:
    """Two task YAMLs of one selection that define the same task name: an error naming both
    (one would silently replace the other's task)."""
    first: dict[str, TaskSpec] = {}
    for spec in specs:
        other = first.setdefault(spec.name, spec)
        if other is not spec and (other.spec_dir, other.file) != (spec.spec_dir, spec.file):
            raise ConfigError(f"task {spec.name!r} is defined twice: in a task YAML in {other.spec_dir} (file "
                              f"{other.file}) and in one in {spec.spec_dir} (file {spec.file}); rename one")


def load_task_dir(folder: str | Path) -> list[TaskSpec]:
    """Register the task YAMLs found in `folder` and its direct subfolders (e.g. the NAME.yaml files
    `negbench import-benchmark --out` writes). YAML files without a `tasks:` list are ignored."""
    import yaml

    folder = Path(folder).expanduser()
    specs: list[TaskSpec] = []
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*/*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # not ours to judge: only task files are read from a data folder
        if isinstance(doc, dict) and isinstance(doc.get("tasks"), list):
            specs += load_task_file(path)
    check_unique_names(specs)
    return specs


def select_tasks(names: Sequence[str] = (), suites: Sequence[str] = (),
                 files: Sequence[str | Path] = ()) -> list[TaskSpec]:
    """The one task selection of negbench (eval, the trainer's eval, the demo).

    Task files are loaded first, so the tasks and suites they define can be named. Names and
    suites then pick the tasks, in order, without repeats; with neither, every task of the
    files runs. A name that is an existing .yaml/.yml file counts as a task file.
    """
    names, files = list(names), list(files)
    files += [n for n in names if _is_task_file(n)]
    names = [n for n in names if not _is_task_file(n)]
    from_files: list[TaskSpec] = []
    for f in dict.fromkeys(str(Path(f).expanduser().resolve()) for f in files):
        from_files += load_task_file(f)
    check_unique_names(from_files)
    if names or suites:
        return expand_tasks(names, list(suites))
    if from_files:
        return list({s.name: s for s in from_files}.values())
    raise ConfigError("nothing to evaluate: give a task name (--task), a suite (--suite) or a task YAML "
                      "(--tasks-file); `negbench tasks` lists them")


def _is_task_file(name: str | Path) -> bool:
    return str(name).endswith((".yaml", ".yml")) and Path(name).is_file()
