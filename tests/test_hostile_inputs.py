"""Hostile files get one line (or a counted skip), never a traceback, and leave nothing stale or
partial: deep nesting, corrupt and oversized zips, file names from data, the wrong VALSE piece,
'..' in task rows, latin-1 / empty corpora, a full disk, PIL's global limit, the digest index's
folder, a 404 download, CC-Neg pickles; hypothesis fuzzes the importers and the zip import."""
from __future__ import annotations

import base64
import http.server
import io
import json
import os
import resource
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_image
from negbench.cli import main
from negbench.core.errors import NegbenchError, TaskFileError
from negbench.inputs.benchmarks import BenchmarkFileError, import_benchmark

DEEP = "[" * 200_000
COCO_CSV = "NegBench/images/COCO_val_mcq_llama3.1_rephrased.csv"
VOC_CSV = "NegBench/images/VOC2007_mcq_llama3.1_rephrased.csv"
MSR_CSV = "NegBench/videos/msr_vtt_mcq_rephrased_llama.csv"
MCQ_HEAD = "image_path,correct_answer,caption_0,caption_1,caption_2,caption_3,correct_answer_template\n"


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# ---- nesting depth ---------------------------------------------------------------------------
def _retrieval(tmp_path, cells) -> Path:
    make_image(tmp_path / "a.png", 0)
    path = tmp_path / "r.csv"
    pd.DataFrame({"filepath": ["a.png"] * len(cells), "captions": cells}).to_csv(path, index=False)
    return path


def test_deeply_nested_cell_is_a_located_error_or_a_counted_skip(tmp_path):
    from negbench.inputs.formats import read_task_file

    path = _retrieval(tmp_path, ['["a dog"]', DEEP, "(" * 5000 + "'x'" + ")" * 5000])
    with pytest.raises(TaskFileError) as info:
        read_task_file(path, "retrieval", tmp_path)
    assert info.value.row == 2 and info.value.column == "captions" and "nested deeper" in info.value.reason
    data = read_task_file(path, "retrieval", tmp_path, skip_invalid=True)
    assert len(data.items) == 1 and [s["row"] for s in data.skipped] == [2, 3]


def test_brackets_inside_quoted_captions_are_not_nesting():
    from negbench.inputs.formats import parse_caption_list

    caps = ["[" * 100 + " a dog", "x)" * 60]
    assert parse_caption_list(json.dumps(caps)) == caps
    assert parse_caption_list(repr(caps)) == caps


def test_deep_json_in_benchmark_files_is_one_line(tmp_path, capsys):
    (tmp_path / "valse").mkdir()
    (tmp_path / "valse" / "existence.json").write_text(DEEP)
    assert main(["import-benchmark", "valse", "--src", str(tmp_path / "valse"), "--out", str(tmp_path / "o")]) == 2
    assert "nested too deeply" in one_line(capsys)
    (tmp_path / "nv").mkdir()
    (tmp_path / "nv" / "NegVQA-7379-negated.jsonl").write_text(DEEP + "\n")
    assert main(["import-benchmark", "negvqa", "--src", str(tmp_path / "nv"), "--out", str(tmp_path / "o2")]) == 2
    assert "line 1" in one_line(capsys)


def test_negdata_counts_a_deep_cell_and_refuses_latin1_and_empty_corpora(tmp_path, capsys):
    make_image(tmp_path / "a.png", 0)
    corpus = tmp_path / "c.csv"
    corpus.write_text("filepath,captions\n" + "".join(f'a.png,"[""a dog on a chair {i}""]"\n' for i in range(4))
                      + f'a.png,"{DEEP}"\n')
    assert main(["negdata", "--corpus", str(corpus), "--out", str(tmp_path / "nd")]) == 0
    capsys.readouterr()
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("filepath\tcaption\na.png\tun caf\xe9 avec un chien\n".encode("latin-1"))
    assert main(["negdata", "--corpus", str(latin), "--out", str(tmp_path / "nd_latin")]) == 2
    line = one_line(capsys)
    assert "not UTF-8" in line and "line 2" in line and str(latin) in line
    empty = tmp_path / "empty.tsv"
    empty.write_text("filepath\tcaption\n")
    assert main(["negdata", "--corpus", str(empty), "--out", str(tmp_path / "nd_empty")]) == 2
    assert "no usable caption rows" in one_line(capsys)
    assert not (tmp_path / "nd_latin").exists() and not (tmp_path / "nd_empty").exists()


# ---- paths from data -------------------------------------------------------------------------
def test_dotdot_in_a_task_row_is_refused(tmp_path):
    from negbench.inputs.formats import read_task_file

    make_image(tmp_path / "root" / "a.png", 0)
    make_image(tmp_path / "secret.png", 1)
    path = tmp_path / "root" / "r.csv"
    path.write_text('filepath,captions\na.png,"[""x""]"\n../secret.png,"[""y""]"\n')
    for check in (True, False):
        data = read_task_file(path, "retrieval", tmp_path / "root", skip_invalid=True, check_media=check)
        assert len(data.items) == 1 and "leaves the media root" in data.skipped[0]["reason"]


def _png(seed: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (seed * 40 % 256, 0, 0)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _negvqa(root: Path, rows: list[tuple[object, int]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"index": idx, "image": _png(seed), "question": "What is not there?", "A": "cat", "B": "dog",
                         "answer": "A"}) for idx, seed in rows]
    (root / "NegVQA-7379-negated.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_negvqa_image_names_are_safe_unique_and_never_stale(tmp_path):
    out = tmp_path / "out"
    src = _negvqa(tmp_path / "nv", [(7, 1), (7, 2), ("../../escape", 3), ("a/b", 4)])
    import_benchmark("negvqa", src, out)
    paths = [Path(p) for p in pd.read_csv(out / "negvqa_negated.csv")["image_path"]]
    images = (out / "negvqa_images").resolve()
    assert len(set(paths)) == 4 and all(p.parent == images for p in paths)
    assert all(p.resolve().parent == images for p in tmp_path.rglob("*escape*"))
    assert [base64.b64encode(p.read_bytes()).decode() for p in paths] == [_png(s) for s in (1, 2, 3, 4)]
    _negvqa(src, [(7, 5)])   # a re-import whose image for index 7 changed
    import_benchmark("negvqa", src, out)
    (p,) = [Path(x) for x in pd.read_csv(out / "negvqa_negated.csv")["image_path"]]
    assert base64.b64encode(p.read_bytes()).decode() == _png(5)


def test_valse_importer_refuses_another_piece(tmp_path, capsys):
    doc = {"plurals_0": {"linguistic_phenomena": "plurals", "image_file": "a.jpg", "caption": "two dogs",
                         "foil": "a dog", "mturk": {"caption": 3, "foil": 0, "other": 0}}}
    (tmp_path / "plurals.json").write_text(json.dumps(doc))
    assert main(["import-benchmark", "valse", "--src", str(tmp_path / "plurals.json"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "VALSE's plurals piece" in one_line(capsys)
    assert not [p for p in (tmp_path / "o").rglob("*") if p.is_file()]


def test_ccneg_python_objects_are_refused_without_torch_advice(tmp_path, capsys):
    import collections

    import torch

    torch.save({"image_paths": [], "annotations": collections.Counter()}, tmp_path / "ccneg_preprocessed.pt")
    assert main(["import-benchmark", "ccneg", "--src", str(tmp_path / "ccneg_preprocessed.pt"),
                 "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys)
    assert "Counter" in line and "weights_only" not in line and "trust" not in line


# ---- zip import --------------------------------------------------------------------------------
def _zip(path: Path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _mcq_csv(n: int = 3) -> bytes:
    return (MCQ_HEAD + "".join(f"val2017/{i}.jpg,0,a,b,c,d,positive\n" for i in range(n))).encode()


def test_zip_with_a_bad_crc_is_one_line_and_leaves_nothing(tmp_path, capsys):
    data = _mcq_csv()
    z = _zip(tmp_path / "r.zip", {COCO_CSV: data}, zipfile.ZIP_STORED)
    raw = bytearray(z.read_bytes())
    at = raw.index(b"a,b,c,d")
    raw[at] = ord("X")
    z.write_bytes(bytes(raw))
    root = tmp_path / "root"
    assert main(["data", "import", str(z), "--data-root", str(root)]) == 2
    line = one_line(capsys)
    assert "corrupt archive member" in line and COCO_CSV in line
    assert not [p for p in root.rglob("*") if p.is_file()]


def test_zip_bomb_is_refused_with_bounded_memory(tmp_path, capsys, monkeypatch):
    from negbench.inputs import release

    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(COCO_CSV, "w", force_zip64=True) as f:
        block = b"0" * (1 << 20)
        for _ in range(300):
            f.write(block)   # 300 MiB of zeros: a ~300 kB file
    root = tmp_path / "root"
    assert main(["data", "import", str(z), "--data-root", str(root)]) == 2
    assert "over 256 MiB" in one_line(capsys)
    # members within the per-file limit but over the total: cut while streaming, memory bounded
    monkeypatch.setattr(release, "MAX_TOTAL_BYTES", 20 << 20)
    big = MCQ_HEAD.encode() + b"val2017/0.jpg,0,a,b,c,d,positive\n" * 300_000   # ~10 MiB each
    z2 = _zip(tmp_path / "three.zip", {COCO_CSV: big, VOC_CSV: big, MSR_CSV: big})
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["data", "import", str(z2), "--data-root", str(root)]) == 2
    assert "in all" in one_line(capsys)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024 < 30
    assert not [p for p in root.rglob("*") if p.is_file()]


FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # over the limit, write() fails with EFBIG like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
from negbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_full_disk_names_the_path_and_leaves_nothing_partial(tmp_path):
    release_dir = tmp_path / "release" / "NegBench" / "images"
    release_dir.mkdir(parents=True)
    (release_dir / "COCO_val_mcq_llama3.1_rephrased.csv").write_bytes(_mcq_csv(60_000))   # ~2 MiB
    root = tmp_path / "root"
    res = subprocess.run([sys.executable, "-c", FULL_DISK, "data", "import", str(tmp_path / "release"),
                          "--data-root", str(root)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "COCO_val_mcq_llama3.1_rephrased.csv" in err[0] and "too large" in err[0].lower()
    assert not [p for p in root.rglob("*") if p.is_file()]


def test_atomic_write_errors_name_the_output(tmp_path, monkeypatch):
    from negbench.core.io import write_text_atomic

    def full(self, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError) as info:
        write_text_atomic(tmp_path / "out.json", "{}")
    assert info.value.filename == str(tmp_path / "out.json") and list(tmp_path.iterdir()) == []


# ---- process-wide settings -------------------------------------------------------------------
def test_allow_big_images_leaves_pil_limit_as_it_was(tmp_path, monkeypatch):
    from PIL import Image

    from negbench.inputs.media import BIG_IMAGES_ENV, open_image_checked

    before = Image.MAX_IMAGE_PIXELS
    monkeypatch.setenv(BIG_IMAGES_ENV, "1")
    with open_image_checked(make_image(tmp_path / "a.png", 0)) as im:
        assert im.size == (40, 40)
    assert Image.MAX_IMAGE_PIXELS == before


def test_digest_index_follows_the_cache_folder(tmp_path, monkeypatch):
    from negbench.core import filehash

    monkeypatch.delenv(filehash.INDEX_ENV, raising=False)
    monkeypatch.setenv("NEGBENCH_CACHE_DIR", str(tmp_path / "envcache"))
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    filehash.file_digest(f)
    assert (tmp_path / "envcache" / "file-digests.sqlite").is_file()
    filehash.use_cache_dir(tmp_path / "flagcache")
    try:
        filehash.file_digest(f)
        assert (tmp_path / "flagcache" / "file-digests.sqlite").is_file()
    finally:
        filehash.use_cache_dir(None)


def test_404_download_says_nothing_was_saved(tmp_path):
    from negbench.inputs.download import DownloadError, fetch

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DownloadError) as info:
            fetch(f"http://127.0.0.1:{srv.server_address[1]}/x.zip", tmp_path / "x.zip", "0" * 32, progress=False)
    finally:
        srv.shutdown()
        srv.server_close()
    assert "404" in str(info.value) and "nothing was saved" in str(info.value) and "is kept" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# ---- fuzz ----------------------------------------------------------------------------------------
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=15)
_valse_entry = st.fixed_dictionaries({}, optional={
    "image_file": st.one_of(st.text(max_size=8), _json), "caption": st.one_of(st.text(max_size=8), _json),
    "foil": st.one_of(st.text(max_size=8), _json), "linguistic_phenomena": st.sampled_from(["existence", "plurals"]),
    "mturk": st.one_of(_json, st.fixed_dictionaries({"caption": st.one_of(st.integers(0, 3), _json)}))})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(_json, st.dictionaries(st.text(max_size=6), st.one_of(_valse_entry, _json), max_size=4)),
       skip=st.booleans())
def test_fuzz_valse_reader(tmp_path_factory, doc, skip):
    from negbench.inputs.benchmarks.valse import read_pairs

    path = tmp_path_factory.mktemp("fz") / "existence.json"
    path.write_text(json.dumps(doc))
    try:
        pairs, dropped, skipped = read_pairs(path, skip_invalid=skip)
    except BenchmarkFileError:
        return
    assert all(isinstance(p.caption, str) and p.caption for p in pairs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(st.text(max_size=30), _json.map(json.dumps),
                                st.fixed_dictionaries({"index": st.one_of(st.text(max_size=12), st.integers()),
                                                       "answer": st.sampled_from(["A", "B", "C"]),
                                                       "A": st.text(max_size=4), "B": st.text(max_size=4),
                                                       "question": st.text(max_size=8),
                                                       "image": st.sampled_from([_png(1), "!!", ""])}).map(json.dumps)),
                      min_size=1, max_size=4), skip=st.booleans())
def test_fuzz_negvqa_reader(tmp_path_factory, lines, skip):
    from negbench.inputs.benchmarks.negvqa import read_rows

    root = tmp_path_factory.mktemp("nv")
    (root / "q.jsonl").write_text("\n".join(l.replace("\n", " ") for l in lines) + "\n")
    try:
        rows, _ = read_rows(root / "q.jsonl", root / "img", skip_invalid=skip)
    except BenchmarkFileError:
        return
    for r in rows:
        if r["image_path"].startswith(str(root)):
            assert Path(r["image_path"]).resolve().parent == (root / "img").resolve()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 2000)))
def test_fuzz_zip_import(tmp_path_factory, mutations, cut):
    from negbench.inputs.release import import_release
    from negbench.inputs.tasks import expand_tasks, load_builtin_tasks, TASKS

    tmp = tmp_path_factory.mktemp("zf")
    raw = bytearray(_zip(tmp / "r.zip", {COCO_CSV: _mcq_csv(20), "NegBench/notes.txt": b"x" * 50}).read_bytes())
    for at, value in mutations:
        raw[at % len(raw)] = value
    (tmp / "r.zip").write_bytes(bytes(raw[:cut] if cut is not None else raw))
    load_builtin_tasks()
    specs = expand_tasks(list(TASKS.names()))
    try:
        import_release(tmp / "r.zip", tmp / "root", specs)
    except NegbenchError:
        pass
    if (tmp / "root").exists():
        assert not list((tmp / "root").glob(".negbench-import-*"))
