"""Tiny copies of the published NegBench files, with their real quirks (DESIGN.md, "What the
published files really look like"), made on the fly:

- absolute paths from the writers' machines (`/mnt/hhc_data/NegBench/...`; the per-finding
  CheXpert files carry the authors' own `/data/healthy-ml/...` prefix);
- `correct_answer` 0 in every MCQ row; MSR-VTT MCQ with `image_path` as its last column;
- COCO retrieval with `positive_objects, negative_objects, filepath, image_id, captions`;
  MSR-VTT retrieval with `image_id, captions, filepath, all_captions` (+ the negated
  variant's concept columns); per-finding CheXpert binary files with 5 columns;
- an option carrying the LLM's commentary.
The media go under a data root in one of the layouts users keep them in.
"""
from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

from conftest import make_image, make_video

PREFIX = "/mnt/hhc_data/NegBench"
HEALTHY_ML = "/data/healthy-ml/scratch/negbench/data"
COCO_IDS = ["000000397133", "000000037777", "000000252219", "000000087038"]
VOC_IDS = ["004070", "000001", "000004"]
VIDEO_IDS = ["video9838", "video7020"]
PATIENTS = ["patient64545", "patient64546", "patient64547"]
FINDINGS = ["Atelectasis", "Cardiomegaly"]
COMMENTARY = ('This image features a dog and a traffic light." (this caption was fine and only minor '
              'adjustments were made)')
OBJECTS = ["dog", "cat", "car", "tree", "boat", "bird"]

# where each dataset's media lives under the data root, per layout
LAYOUTS = {
    "natural": {"coco": "val2017", "voc": "VOCdevkit/VOC2007/JPEGImages", "msrvtt": "MSRVTT/videos/all",
                "chexpert": "CheXpert-v1.0-small/valid"},
    "authors": {"coco": "images/val2017", "voc": "images/VOC2007/JPEGImages", "msrvtt": "videos/TestVideo",
                "chexpert": "chexpert/valid"},
}


def foreign(dataset: str, name: str, prefix: str = PREFIX) -> str:
    """The path the published files give a media file of `dataset`."""
    folder = {"coco": "images/val2017", "voc": "images/VOC2007/JPEGImages", "msrvtt": "videos/TestVideo",
              "chexpert": "chexpert/valid"}[dataset]
    return f"{prefix}/{folder}/{name}"


def media_names() -> dict[str, list[str]]:
    return {"coco": [f"{i}.jpg" for i in COCO_IDS], "voc": [f"{i}.jpg" for i in VOC_IDS],
            "msrvtt": [f"{v}.mp4" for v in VIDEO_IDS],
            "chexpert": [f"{p}/study1/view1_frontal.jpg" for p in PATIENTS]}


def write_media(data_root: Path, layout: str = "natural") -> Path:
    """The media of every dataset under data_root in `layout` ('natural' | 'authors')."""
    seed = 0
    for dataset, names in media_names().items():
        for name in names:
            seed += 1
            target = data_root / LAYOUTS[layout][dataset] / name
            (make_video if dataset == "msrvtt" else make_image)(target, seed)
    return data_root


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _mcq_options(i: int, medium: str = "image") -> list[str]:
    a, b, n = OBJECTS[i % 6], OBJECTS[(i + 1) % 6], OBJECTS[(i + 3) % 6]
    # the authors' generator: correct option first, no trailing period, paraphrased wording
    return [f"This {medium} shows a {a} and a {b}", f"A {medium} with a {n} but no {b}",
            f"This {medium} shows a {n}", f"There is no {a} in this {medium}"]


def _mcq_rows(dataset: str, names: list[str], medium: str = "image") -> list[list]:
    rows = []
    for i, name in enumerate(names):
        rows.append([foreign(dataset, name), 0, *_mcq_options(i, medium), ["positive", "negative", "hybrid"][i % 3]])
    return rows


def _captions(i: int, k: int) -> list[str]:
    return [f"A photo of a {OBJECTS[(i + j) % 6]} number {j}." for j in range(k)]


def write_release(release: Path) -> Path:
    """The authors' CSV release under release/NegBench/{images,videos}/ (returns `release`)."""
    base = release / "NegBench"
    names = media_names()
    mcq_header = ["image_path", "correct_answer", "caption_0", "caption_1", "caption_2", "caption_3",
                  "correct_answer_template"]
    coco = _mcq_rows("coco", names["coco"])
    coco[1][3] = COMMENTARY   # a wrong option with the LLM's commentary
    _write_csv(base / "images/COCO_val_mcq_llama3.1_rephrased.csv", mcq_header, coco)
    _write_csv(base / "images/VOC2007_mcq_llama3.1_rephrased.csv", mcq_header, _mcq_rows("voc", names["voc"]))
    video = [r[1:] + [r[0]] for r in _mcq_rows("msrvtt", names["msrvtt"], "video")]
    _write_csv(base / "videos/msr_vtt_mcq_rephrased_llama.csv", mcq_header[1:] + ["image_path"], video)
    _write_retrieval(base, names)
    _write_chexpert(base, names["chexpert"])
    return release


def _write_retrieval(base: Path, names: dict) -> None:
    coco_header = ["positive_objects", "negative_objects", "filepath", "image_id", "captions"]
    rows = [[str(["dog", "cat"]), str(["boat"]), foreign("coco", n), int(n.split(".")[0]), str(_captions(i, 5))]
            for i, n in enumerate(names["coco"])]
    _write_csv(base / "images/COCO_val_retrieval.csv", coco_header, rows)
    neg = [r[:4] + [str([c[:-1] + ", and there is no boat." for c in _captions(i, 5)])] for i, r in enumerate(rows)]
    _write_csv(base / "images/COCO_val_negated_retrieval_llama3.1_rephrased_affneg_true.csv", coco_header, neg)
    vids = [[v.split(".")[0], str(_captions(i, 1)), foreign("msrvtt", v), str(_captions(i + 1, 20))]
            for i, v in enumerate(names["msrvtt"])]
    _write_csv(base / "videos/msr_vtt_retrieval.csv", ["image_id", "captions", "filepath", "all_captions"], vids)
    extra = ["positive_concept1", "positive_concept2", "negative_concept", "pos_captions", "neg_captions",
             "inverted_captions"]
    negv = [r + ["man", "car", "dog", str(_captions(i, 2)), str(_captions(i + 2, 2)), str(_captions(i + 3, 2))]
            for i, r in enumerate(vids)]
    _write_csv(base / "videos/msr_vtt_negated_retrieval.csv", ["image_id", "captions", "filepath", "all_captions"]
               + extra, negv)


def _write_chexpert(base: Path, names: list[str]) -> None:
    rows = [[foreign("chexpert", n), 0, "This X-ray shows edema", "This X-ray does not show edema"]
            for n in names]
    _write_csv(base / "images/chexpert_binary_mcq.csv", ["image_path", "correct_answer", "caption_0", "caption_1"],
               rows)
    header = ["image_path", "correct_answer", "caption_0", "caption_1", "correct_answer_template"]
    for finding in FINDINGS:
        f = finding.lower().replace("_", " ")
        neg = [[foreign("chexpert", n, HEALTHY_ML), i % 2, f"This X-ray shows {f}", f"This X-ray does not show {f}",
                "positive" if i % 2 == 0 else "negative"] for i, n in enumerate(names)]
        aff = [[foreign("chexpert", n, HEALTHY_ML), 0, f"This X-ray shows {f}", "This X-ray shows no finding",
                "positive"] for n in names]
        _write_csv(base / f"images/{finding}/chexpert_negation_binary_mcq.csv", header, neg)
        _write_csv(base / f"images/{finding}/chexpert_affirmation_binary_mcq.csv", header, aff)


def zip_release(release: Path, zip_path: Path) -> Path:
    """The release folder as the zip a user downloads (one extra top folder, like GitHub's)."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(release.rglob("*")):
            if p.is_file():
                zf.write(p, f"negbench-release-main/{p.relative_to(release).as_posix()}")
    return zip_path


def present_tasks() -> list[str]:
    """Task names the fixture release provides (all of them ready once the media are in place)."""
    return ["coco_mcq", "voc2007_mcq", "msrvtt_mcq", "coco_negated_retrieval", "msrvtt_negated_retrieval_templated",
            "chexpert_binary_mcq", "coco_retrieval", "msrvtt_retrieval"] + [
        f"chexpert_{f.lower()}_{k}_binary_mcq" for f in FINDINGS for k in ("negation", "affirmation")]


def manifest_files(data_root: Path) -> dict:
    return json.loads((data_root / "negbench-release.manifest.json").read_text())
