"""Property-based fuzzing: any bytes in a task file, any mutation of an annotation file ->
parsed items or a NegbenchError, never another exception."""
from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from negbench.core.errors import NegbenchError
from negbench.inputs.formats import read_task_file
from negbench.inputs.sources import read_source
from negbench_build_fixtures import write_chexpert, write_coco, write_msrvtt, write_voc

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADERS = {
    "mcq": ["image_path", "correct_answer", "caption_0", "caption_1", "caption_2", "caption_3",
            "correct_answer_template", "caption_types"],
    "binary-mcq": ["image_path", "caption_0", "caption_1", "correct_answer"],
    "retrieval": ["filepath", "captions"],
}
CELLS = st.one_of(st.text(max_size=30), st.sampled_from(
    ["0", "3", "inf", "1e400", "nan", "-1", "[\"a\"]", "['a', 'b']", "[1, 2]", "__import__('os')", "{}",
     "positive", "hybrid", "[\"positive\", \"negative\", \"hybrid\", \"negative\"]", "img.png", "/abs/x.png",
     "\"", "\ufeff", "a,b", "\x00"]))


def _parse_or_error(path: Path, kind: str) -> None:
    for skip in (False, True):
        try:
            data = read_task_file(path, kind, path.parent, skip_invalid=skip, check_media=False)
        except NegbenchError:
            continue
        assert all(item.captions for item in data.items)


@FUZZ
@given(raw=st.binary(max_size=400), kind=st.sampled_from(sorted(HEADERS)))
def test_any_bytes_give_items_or_a_negbench_error(raw, kind, tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(raw)
    _parse_or_error(path, kind)


@FUZZ
@given(kind=st.sampled_from(sorted(HEADERS)), rows=st.lists(st.lists(CELLS, max_size=10), max_size=5),
       bom=st.booleans(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_header_plus_random_cells_give_items_or_a_negbench_error(kind, rows, bom, encoding, tmp_path):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADERS[kind])
    writer.writerows(rows)
    text = ("\ufeff" if bom else "") + buf.getvalue()
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode(encoding, errors="replace"))
    _parse_or_error(path, kind)


# ---------------------------------------------------------------- annotation files

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**20) | st.floats() | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                                                     max_size=3), max_leaves=6)


def _paths(obj, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield from _paths(v, prefix + (i,))


def _mutate(obj, path, value, delete: bool):
    if not path:
        return value
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return obj


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_sources")
    for name, writer in (("coco", write_coco), ("voc", write_voc), ("msrvtt", write_msrvtt),
                         ("chexpert", write_chexpert)):
        writer(root / name, n=5) if name != "msrvtt" else writer(root / name, n=4)
    return root


def _read_all_ways(name: str, root: Path) -> None:
    for skip in (False, True):
        try:
            read_source(name, root, skip_invalid=skip)
        except NegbenchError:
            pass


@FUZZ
@given(data=st.data(), which=st.sampled_from(["coco", "msrvtt"]))
def test_mutated_json_annotations_give_samples_or_a_negbench_error(pristine, which, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / which
        shutil.copytree(pristine / which, root)
        ann = root / ("annotations/instances_val2017.json" if which == "coco" else "videodatainfo.json")
        obj = json.loads(ann.read_text())
        for _ in range(data.draw(st.integers(1, 3))):
            paths = list(_paths(obj))
            path = data.draw(st.sampled_from(paths))
            obj = _mutate(obj, path, data.draw(JSON_VALUES), delete=bool(path) and data.draw(st.booleans()))
        ann.write_text(json.dumps(obj))
        _read_all_ways(which, root)


@FUZZ
@given(data=st.data(), which=st.sampled_from(["voc", "chexpert"]))
def test_mutated_text_annotations_give_samples_or_a_negbench_error(pristine, which, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / which
        shutil.copytree(pristine / which, root)
        if which == "voc":
            target = data.draw(st.sampled_from(sorted((root / "Annotations").glob("*.xml"))
                                               + [root / "ImageSets" / "Main" / "test.txt"]))
        else:
            target = root / "CheXpert-v1.0-small" / "valid.csv"
        raw = bytearray(target.read_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
            op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
            if op == "flip" and raw:
                raw[pos] = data.draw(st.integers(0, 255))
            elif op == "cut":
                del raw[pos:pos + data.draw(st.integers(1, 40))]
            else:
                raw[pos:pos] = data.draw(st.sampled_from([b",", b"\"", b"\n", b"<", b"</object>", b"\xff\xfe",
                                                          b"1e400", b"/abs/path.jpg", b"../x"]))
        target.write_bytes(bytes(raw))
        _read_all_ways(which, root)
