"""`negbench data download` against a real HTTP server on 127.0.0.1 serving small archives in
the real archives' layouts: resumption after an interrupted transfer, checksums enforced."""
from __future__ import annotations

import hashlib
import http.server
import json
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from negbench.cli import main
from negbench.core.errors import ConfigError
from negbench.inputs.download import MEDIA_SOURCES, Archive, DownloadError, MediaSource, download_media

from conftest import make_image


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.requests, self.cut_once = root, [], set()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files with Range support; a file named in server.cut_once is cut off halfway once."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        path = self.server.root / name
        self.server.requests.append((name, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        body = data[start:]
        if name in self.server.cut_once:
            self.server.cut_once.discard(name)
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops mid-transfer
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    srv = _Server(tmp_path / "served")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _noise_jpeg(path: Path, seed: int) -> Path:
    """A photo-sized JPEG (~0.5 MB of noise), so a transfer spans many reads."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path, quality=95)
    return path


def _archives(served: Path, tmp: Path) -> dict[str, Path]:
    """val2017.zip, annotations_trainval2017.zip and VOCtest_06-Nov-2007.tar, real layouts."""
    served.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(served / "val2017.zip", "w") as zf:
        zf.write(_noise_jpeg(tmp / "img/000000397133.jpg", 0), "val2017/000000397133.jpg")
        zf.write(make_image(tmp / "img/000000037777.jpg", 1), "val2017/000000037777.jpg")
    with zipfile.ZipFile(served / "annotations_trainval2017.zip", "w") as zf:
        zf.writestr("annotations/instances_val2017.json", json.dumps({"images": [], "annotations": []}))
    with tarfile.open(served / "VOCtest_06-Nov-2007.tar", "w") as tar:
        tar.add(_noise_jpeg(tmp / "voc" / "004070.jpg", 3), "VOCdevkit/VOC2007/JPEGImages/004070.jpg")
        (tmp / "voc" / "004070.xml").write_text("<annotation><filename>004070.jpg</filename></annotation>")
        tar.add(tmp / "voc" / "004070.xml", "VOCdevkit/VOC2007/Annotations/004070.xml")
    return {p.name: p for p in served.iterdir()}


def _sources_for(archives: dict[str, Path], base: str) -> dict[str, MediaSource]:
    """The real sources, pointed at the local server, with the test archives' checksums."""
    out = {}
    for name, src in MEDIA_SOURCES.items():
        arcs = tuple(Archive(f"{base}/{a.filename}", hashlib.md5(archives[a.filename].read_bytes()).hexdigest())
                     for a in src.archives)
        out[name] = MediaSource(src.name, src.title, src.present, arcs, src.how_to_get)
    return out


def test_interrupted_download_resumes_and_unpacks_the_real_layout(server, tmp_path):
    archives = _archives(server.root, tmp_path)
    sources = _sources_for(archives, f"http://127.0.0.1:{server.server_port}")
    root = tmp_path / "data"
    server.cut_once.add("val2017.zip")
    with pytest.raises(DownloadError, match="partial file .* is kept and the same command resumes it"):
        download_media(["coco", "voc"], root, retries=0, progress=False, sources=sources)
    part = root / "downloads" / "val2017.zip.part"
    half = part.stat().st_size
    assert 0 < half < archives["val2017.zip"].stat().st_size
    done = download_media(["coco", "voc"], root, retries=0, progress=False, sources=sources)
    assert ("val2017.zip", f"bytes={half}-") in server.requests          # resumed, not restarted
    assert (root / "val2017/000000397133.jpg").is_file() and (root / "annotations/instances_val2017.json").is_file()
    assert (root / "VOCdevkit/VOC2007/JPEGImages/004070.jpg").is_file()
    assert done == {"coco": ["val2017"], "voc": ["VOCdevkit/VOC2007/JPEGImages"]}
    assert (root / "downloads/val2017.zip").read_bytes() == archives["val2017.zip"].read_bytes()
    n = len(server.requests)
    download_media(["coco"], root, progress=False, sources=sources)      # verified archives are not fetched again
    assert len(server.requests) == n


def test_retries_resume_within_one_run(server, tmp_path):
    archives = _archives(server.root, tmp_path)
    sources = _sources_for(archives, f"http://127.0.0.1:{server.server_port}")
    server.cut_once.add("VOCtest_06-Nov-2007.tar")
    download_media(["voc"], tmp_path / "data", retries=1, progress=False, sources=sources)
    ranges = [r for name, r in server.requests if name == "VOCtest_06-Nov-2007.tar"]
    assert ranges[0] is None and ranges[1].startswith("bytes=")


def test_checksum_mismatch_is_refused_at_the_cli(server, tmp_path, capsys):
    _archives(server.root, tmp_path)   # small fakes: the real VOC md5 cannot match
    root = tmp_path / "data"
    rc = main(["data", "download", "--data-root", str(root), "--what", "voc", "--quiet",
               "--mirror", f"http://127.0.0.1:{server.server_port}/"])
    err = capsys.readouterr().err
    assert rc == 2 and "checksum mismatch: expected md5 b6e924de25625d8de591ea690078ad9f" in err
    assert not root.exists()   # nothing was saved: the folders the run made are gone too


def test_registration_only_sources_say_where_to_get_them(tmp_path):
    with pytest.raises(ConfigError, match=r"msrvtt: needs registration.*MSRVTT/videos/all"):
        download_media(["msrvtt"], tmp_path)
