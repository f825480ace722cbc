"""The media NegBench needs, where it comes from, and a resumable, checksummed download.

COCO val2017 and VOC2007 test can be fetched without registration (`negbench data
download`); MSR-VTT's test videos and CheXpert-v1.0-small need one, so `negbench data check`
only says where to get them and where to put them. Archives are fetched with `requests`
(HTTP Range requests resume a `.part` file left by an interrupted run), verified against
the published MD5 with torchvision's `check_integrity`, and unpacked with torchvision's
`extract_archive` into the layout the readers and the path rewrite expect.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from negbench.core.errors import ConfigError, NegbenchError

log = logging.getLogger(__name__)
CHUNK = 1 << 16  # bytes per read; an interrupted read loses at most this much
DOWNLOAD_DIR = "downloads"  # under the data root; archives are kept so a rerun skips them


class DownloadError(NegbenchError):
    """A download that failed, was interrupted, or does not match its checksum."""


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str
    size: int | None = None       # bytes, for the progress bar before the server answers
    extract_to: str = "."         # folder under the data root

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class MediaSource:
    name: str
    title: str
    present: tuple[str, ...]      # folders under the data root, any of which means "have it"
    archives: tuple[Archive, ...] = ()
    how_to_get: str = ""          # for sources that need registration (or the CSV release)


MEDIA_SOURCES: dict[str, MediaSource] = {s.name: s for s in (
    MediaSource("coco", "COCO 2017 val images + annotations", ("val2017", "images/val2017", "coco/val2017"), (
        Archive("http://images.cocodataset.org/zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80", 815585330),
        Archive("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
                "f4bbac642086de4f52a3fdda2de5fa2c", 252907541)),
        "`negbench data download --what coco` (cocodataset.org) -> DATA_ROOT/val2017, DATA_ROOT/annotations"),
    MediaSource("voc", "PASCAL VOC2007 test", ("VOCdevkit/VOC2007/JPEGImages", "VOC2007/JPEGImages",
                                                "images/VOC2007/JPEGImages"), (
        Archive("http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar",
                "b6e924de25625d8de591ea690078ad9f"),),
        "`negbench data download --what voc` (host.robots.ox.ac.uk) -> DATA_ROOT/VOCdevkit/VOC2007"),
    MediaSource("msrvtt", "MSR-VTT test videos", ("MSRVTT/videos/all", "TestVideo", "videos/TestVideo"), (),
                "needs registration: request MSR-VTT from Microsoft Research's MSR-VTT dataset page, then put "
                "the test videos as DATA_ROOT/MSRVTT/videos/all/videoN.mp4 (or DATA_ROOT/TestVideo/videoN.mp4)"),
    MediaSource("chexpert", "CheXpert-v1.0-small valid", ("CheXpert-v1.0-small/valid", "chexpert/valid"), (),
                "needs registration: CheXpert-v1.0-small from Stanford AIMI "
                "(stanfordmlgroup.github.io/competitions/chexpert), unpacked as DATA_ROOT/CheXpert-v1.0-small/valid"),
    MediaSource("release", "the authors' NegBench CSV release (and HardNeg-Syn images)", ("images", "videos"), (),
                "the CSV files linked from the NegBench repository (github.com/m1k2zoo/negbench); then "
                "`negbench data import PATH_TO_FOLDER_OR_ZIP --data-root DATA_ROOT`"),
)}
DOWNLOADABLE = tuple(n for n, s in MEDIA_SOURCES.items() if s.archives)


def source_present(source: MediaSource, data_root) -> bool:
    root = Path(data_root).expanduser()
    return any((root / p).is_dir() for p in source.present)


def _md5_ok(path: Path, md5: str) -> bool:
    from torchvision.datasets.utils import check_integrity

    return check_integrity(str(path), md5)


class _Failed(Exception):
    """One transfer that stopped: `why` in a few words; `resumable`: whether asking again for the
    rest may help (a dropped connection may; a name that does not resolve, a refused connection
    or an HTTP error status will not within this run)."""

    def __init__(self, why: str, resumable: bool):
        super().__init__(why)
        self.why, self.resumable = why, resumable


def _why(url: str, exc: BaseException) -> _Failed:
    """A requests exception -> one short reason naming the host (never the library's repr)."""
    import urllib.parse

    import requests

    from negbench.core.http import unreachable_reason

    parts = urllib.parse.urlsplit(url)
    unreachable = unreachable_reason(exc)
    if unreachable == "host not found":
        return _Failed(f"host {parts.hostname!r} not found (DNS failure; not retried)", False)
    if unreachable == "connection refused":
        return _Failed(f"connection refused by {parts.netloc} (nothing listens there)", False)
    if isinstance(exc, requests.Timeout):
        return _Failed(f"no data from {parts.netloc} for 60 s", True)
    return _Failed(f"connection to {parts.netloc} closed ({type(exc).__name__})", True)


def _stream_once(url: str, part: Path, total_hint: int | None, progress: bool) -> None:
    """One HTTP request appending to `part` from its current size (restarting when the server
    ignores the Range header); _Failed when it stops."""
    import requests

    try:
        with requests.get(url, headers=_range_from(part), stream=True, timeout=60) as resp:
            _save(resp, part, total_hint, progress)
    except requests.RequestException as exc:
        raise _why(url, exc) from None


def _range_from(part: Path) -> dict:
    have = part.stat().st_size if part.exists() else 0
    return {"Range": f"bytes={have}-"} if have else {}


def _save(resp, part: Path, total_hint: int | None, progress: bool) -> None:
    import requests
    from tqdm.auto import tqdm

    if resp.status_code == 416:   # nothing left to fetch: the part file is complete
        return
    if resp.status_code not in (200, 206):
        raise _Failed(f"HTTP {resp.status_code} {resp.reason}".strip(), False)
    have = part.stat().st_size if part.exists() and resp.status_code == 206 else 0   # 200: no resume, start over
    length = resp.headers.get("Content-Length")
    total = have + int(length) if length is not None else total_hint
    with open(part, "ab" if have else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5],
            disable=not progress, leave=False) as bar:
        try:
            for chunk in resp.iter_content(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
        except requests.exceptions.ChunkedEncodingError:   # dropped midway: said below with the byte counts
            if total is None:
                raise
    if total is not None and part.stat().st_size < total:
        raise _Failed(f"connection closed after {part.stat().st_size} of {total} bytes", True)


def _partial_note(part: Path) -> str:
    """What is left of a failed download: a resumable part file, or nothing (an empty one goes)."""
    have = part.stat().st_size if part.exists() else 0
    if have:
        return f"the partial file {part} ({have} bytes) is kept and the same command resumes it"
    if part.exists():
        part.unlink()
    return "nothing was saved"


def fetch(url: str, dest: Path, md5: str, *, size: int | None = None, retries: int = 2,
          progress: bool = True) -> Path:
    """Download `url` to `dest` (resuming `dest.part`), verify its MD5, then rename into place.

    An existing `dest` with the right MD5 is kept. A finished download with the wrong MD5 is
    deleted and refused. A dropped connection is resumed up to `retries` times; after that the
    `.part` file stays, and the same call later resumes it. A host that does not resolve, a
    refused connection or an HTTP error status stops at once (one line: the URL and the reason).
    """
    dest = Path(dest)
    if dest.exists() and _md5_ok(dest, md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _stream_once(url, part, size, progress)
            break
        except _Failed as failed:
            if not failed.resumable or attempt == retries:
                raise DownloadError(f"{url}: {failed.why}; {_partial_note(part)}") from None
            log.warning("%s: %s; resuming (%d of %d)", url, failed.why, attempt + 1, retries)
    if not _md5_ok(part, md5):
        from torchvision.datasets.utils import calculate_md5

        got = calculate_md5(str(part))
        part.unlink()
        raise DownloadError(f"{url}: checksum mismatch: expected md5 {md5}, got {got}; the file was deleted "
                            f"(a wrong mirror, or a corrupted transfer)")
    os.replace(part, dest)
    return dest


def unpack(path: Path, to: Path) -> None:
    """Unpack a .tar(.gz) with tarfile's 'data' filter (no member escapes `to`, no devices)
    or anything else (zip, ...) with torchvision's extract_archive (zipfile strips '..')."""
    import tarfile

    from torchvision.datasets.utils import extract_archive

    to.mkdir(parents=True, exist_ok=True)
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            tar.extractall(to, filter="data")
    else:
        extract_archive(str(path), str(to))


def _missing_dirs(path: Path) -> list[Path]:
    """The folders `path.mkdir(parents=True)` would create, deepest first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def _remove_if_empty(folders: list[Path]) -> None:
    """Undo the folders a failed run made, deepest first, keeping any that hold something."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:   # not empty (a resumable .part, an earlier archive) or already gone
            return


def _url(archive: Archive, mirror: str | None) -> str:
    return f"{mirror.rstrip('/')}/{archive.filename}" if mirror else archive.url


def download_media(what: Sequence[str], data_root, *, mirror: str | None = None, retries: int = 2,
                   progress: bool = True, sources: dict[str, MediaSource] | None = None) -> dict[str, list[str]]:
    """Fetch, verify and unpack the archives of each named source under data_root.

    what: names from DOWNLOADABLE (coco, voc). mirror: a base URL serving the same file
    names (checksums still apply). Returns {source: [unpacked folders present afterwards]}.
    """
    sources = sources or MEDIA_SOURCES
    root = Path(data_root).expanduser()
    unknown = [w for w in what if w not in sources or not sources[w].archives]
    if unknown:
        fetchable = [n for n, s in sources.items() if s.archives]
        raise ConfigError(f"--what {','.join(unknown)}: cannot be downloaded; allowed {fetchable}. "
                          + " ".join(f"{w}: {sources[w].how_to_get}." for w in unknown if w in sources))
    done = {}
    made = _missing_dirs(root / DOWNLOAD_DIR)   # removed again if nothing lands in them
    for name in what:
        src = sources[name]
        for archive in src.archives:
            try:
                path = fetch(_url(archive, mirror), root / DOWNLOAD_DIR / archive.filename, archive.md5,
                             size=archive.size, retries=retries, progress=progress)
            except DownloadError:
                _remove_if_empty(made)
                raise
            unpack(path, root / archive.extract_to)
        done[name] = [p for p in src.present if (root / p).is_dir()]
        if not done[name]:
            raise DownloadError(f"{name}: unpacked {[a.filename for a in src.archives]} but none of "
                                f"{list(src.present)} exists under {root}; the archive has another layout")
    return done
