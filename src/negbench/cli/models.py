"""`negbench models`: the known negation-relevant checkpoints and their published NegBench numbers."""
from __future__ import annotations

import argparse

from negbench.cli._common import HelpFormatter

HELP = "list known negation-relevant checkpoints: model string, format notes, weights, published numbers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = HelpFormatter
    parser.allow_abbrev = False
    parser.add_argument("--brief", action="store_true", help="one line per model: id and model string")


def run(args: argparse.Namespace) -> int:
    from negbench.analysis.published import published_rows, rows_for
    from negbench.models.catalog import load_catalog

    entries, _ = load_catalog()
    rows = published_rows()
    for e in entries:
        if args.brief:
            print(f"{e.id:<22} {e.model}")
            continue
        print(f"{e.name}  [{e.id}]\n  model:   {e.model}")
        for alt in e.also:
            print(f"  also:    {alt}")
        print(f"  paper:   {e.paper}\n  format:  {e.format}\n  weights: {e.weights}")
        mine = rows_for(e.published_as, rows) if e.published_as else []
        if not mine:
            print("  published NegBench numbers: none known to negbench")
        for r in mine:
            print(f"  published: {_task_of(r)} {r['metric']} = {100 * float(r['value']):.1f}%  "
                  f"({r['backbone']}; {r['source']})")
        print()
    others = _uncatalogued(rows, {e.published_as for e in entries})
    if others and not args.brief:
        # training-free remedies and methods negbench has no checkpoint string for (docs/training_free.md)
        print("Other published numbers (models without a catalogue entry; the training-free remedies can be "
              "tried on any model as negaware:METHOD:BASE, see docs/training_free.md):")
        for model, mine in others.items():
            print(f"  {model}")
            for r in mine:
                print(f"    published: {_task_of(r)} {r['metric']} = {100 * float(r['value']):.1f}%  "
                      f"({r['backbone']}; {r['source']})")
        print()
    print(f"{len(entries)} checkpoints. Numbers above are published, not measured by negbench.")
    return 0


def _uncatalogued(rows: list[dict], catalogued: set) -> dict[str, list[dict]]:
    """Published rows of models with no catalogue entry, by model, in file order."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r["model"] not in catalogued:
            out.setdefault(r["model"], []).append(r)
    return out


def _task_of(row: dict) -> str:
    """A published row's negbench task name (coco_mcq, ...), so the line reads as `negbench table` does;
    the dataset and the paper's task otherwise (e.g. the NegBench-wide averages)."""
    from negbench.analysis.report.tables import PUBLISHED_TASKS

    return PUBLISHED_TASKS.get((row["dataset"], row["task"])) or f"{row['dataset']} {row['task']}"
