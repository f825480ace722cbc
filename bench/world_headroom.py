"""How much headroom do NegWorld's retrieval files leave? Oracle ceilings next to a model's R@k.

An oracle knows every test item (the world's truth/ files: scene, objects, colours, boxes) and
understands every caption. It ranks first the items that fit a caption, then among those the
ones the caption describes most completely (fewest objects it does not name), and breaks the
remaining ties at random. Its expected text->image recall@k is exact, no sampling needed: with
`b` items ranked above the caption's own item and `t` tied with it (itself included), the own
item is in the top k with probability clip((k - b) / t, 0, 1).

Two oracles:
- object-set: knows only which objects each item holds; a caption fits when the item holds
  every object it names and none it negates (what a caption-blind detector could tell);
- attribute-aware: also checks every colour, count, size, place and scene the caption states.

When the ceiling is low, many items fit each caption equally well and a model's R@k says
little about whether it understood the caption; a model at the ceiling cannot improve.

    python bench/world_headroom.py --world WORLD --suite SUITE [--results RESULTS_DIR/MODEL_SLUG ...]

WORLD is `negbench world generate --out WORLD`, SUITE the folder `build_world_suite` wrote
(the demo's `demo-out/world` and `demo-out/tasks`); each --results folder adds its R@5 column.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from negbench.inputs.vocab import read_vocab_file
from negbench.world.headroom import oracle_recall
from negbench.world.truth import read_truth


def model_recall(results_dir: Path, task_file: Path, k: int = 5) -> float | None:
    """The model's measured t2i R@k for this task file, from its results JSON."""
    for path in results_dir.glob("*.json"):
        res = json.loads(path.read_text())
        resolved = (res.get("task") or {}).get("resolved_file")
        if resolved and Path(resolved).resolve() == task_file.resolve():
            return 100 * res["metrics"][f"t2i_recall@{k}"]["value"]
    return None


def headroom_rows(world: Path, suite: Path, results: list[Path]) -> list[dict]:
    vocab = read_vocab_file(world / "vocab.txt")
    truths = {"coco": read_truth(world, "coco_test"), "msrvtt": read_truth(world, "msrvtt")}
    rows = []
    for task_file in sorted(suite.glob("*retrieval*.csv")):
        truth = truths["msrvtt" if task_file.name.lower().startswith("msr") else "coco"]
        rows.append({"file": task_file.name, "object_set": oracle_recall(task_file, truth, vocab, False),
                     "attributes": oracle_recall(task_file, truth, vocab, True),
                     "models": [model_recall(r, task_file) for r in results]})
    return rows


def print_table(rows: list[dict], results: list[Path]) -> None:
    model_cols = "".join(f" {r.name} R@5 |" for r in results)
    print(f"| file | object-set R@5 | attribute-aware R@1 | R@5 | R@10 | median fitting | own misfits |{model_cols}")
    print("|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(results))
    for row in rows:
        a, o = row["attributes"], row["object_set"]
        models = "".join(" - |" if m is None else f" {m:.1f} |" for m in row["models"])
        print(f"| {row['file']} | {o['R@5']:.1f} | {a['R@1']:.1f} | {a['R@5']:.1f} | {a['R@10']:.1f} | "
              f"{a['median_fitting']:.0f} | {a['own_misfits']}/{a['captions']} |{models}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    ap.add_argument("--world", type=Path, required=True, help="NegWorld folder (vocab.txt, truth/)")
    ap.add_argument("--suite", type=Path, required=True, help="folder with the built retrieval CSVs")
    ap.add_argument("--results", type=Path, nargs="*", default=[], help="model results folders, for their R@5")
    args = ap.parse_args()
    print_table(headroom_rows(args.world, args.suite, args.results), args.results)


if __name__ == "__main__":
    main()
