"""A model string that loads its weights only when an embedding or an answer has to be computed.

A warm evaluation (every embedding, answer or option log-probability cached) then needs only the
model's identity, which the backends compute from the string and file fingerprints
(negbench.models.base.model_identity), and for embeddings its preprocessing id, which the first
load records next to the cache.
"""
from __future__ import annotations

import logging
from pathlib import Path

from negbench.core.io import read_json, stable_hash, write_json_atomic

log = logging.getLogger(__name__)


class LazyModel:
    """Stands in for a ModelAdapter until `load()` is called (then forwards to it)."""

    def __init__(self, model_string: str, *, device: str | None = None, precision: str = "fp32",
                 load_options: dict | None = None):
        from negbench.models.base import model_identity, pick_device

        self.model_string = model_string
        self.precision = precision
        self._load_options = dict(load_options or {})
        self._device_name = device
        self.device = pick_device(device)
        self._identity = model_identity(model_string, precision=precision)
        self._adapter = None
        self._twins: dict[str, LazyModel] = {}   # the same string at other precisions (at_precision)

    @property
    def capabilities(self) -> frozenset:
        """The loaded adapter's, else what its backend declares (no weights loaded to ask)."""
        from negbench.models.base import backend_capabilities

        return self._adapter.capabilities if self._adapter is not None else backend_capabilities(self.model_string)

    @property
    def loaded(self) -> bool:
        return self._adapter is not None

    def load(self):
        """The real adapter (loaded on the first call)."""
        if self._adapter is None:
            from negbench.models.base import load_model

            log.debug("loading %s", self.model_string)
            self._adapter = load_model(self.model_string, device=self._device_name, precision=self.precision,
                                       **self._load_options)
            try:  # results folders are named by the string the user typed
                self._adapter.model_string = self.model_string
            except AttributeError:
                pass
        return self._adapter

    def at_precision(self, precision: str) -> "LazyModel":
        """The same model string at another precision (loaded on its first need, then kept: a suite
        asks for it once per task)."""
        if precision == self.precision:
            return self
        if precision not in self._twins:
            self._twins[precision] = LazyModel(self.model_string, device=self._device_name, precision=precision,
                                               load_options=self._load_options)
        return self._twins[precision]

    def identity(self) -> str | None:
        return self.load().identity() if self._adapter is not None or self._identity is None else self._identity

    def preprocess_id(self, cache_dir) -> str:
        """The adapter's preprocess_id(), read from the record a loaded run left in cache_dir."""
        record = _record_path(cache_dir, self.identity()) if cache_dir is not None else None
        if record is not None and _is_file(record) and self._adapter is None:
            return read_json(record)["preprocess_id"]
        return preprocess_id(self.load(), cache_dir)


def loaded(model):
    """The real adapter behind a LazyModel (loading it now), or the adapter itself."""
    return model.load() if isinstance(model, LazyModel) else model


def loaded_or_none(model):
    """The adapter behind a LazyModel if something loaded it (None: nothing was computed, so there
    is nothing to ask it about how it computed), or the adapter itself."""
    if isinstance(model, LazyModel):
        return model._adapter
    return model


def preprocess_id(model, cache_dir) -> str:
    """preprocess_id of a LazyModel or an adapter; a loaded adapter records it in cache_dir, so
    a later LazyModel of the same identity can name its cache without loading weights."""
    if isinstance(model, LazyModel):
        return model.preprocess_id(cache_dir)
    pid = adapter_preprocess_id(model)
    record = _record_path(cache_dir, model.identity()) if cache_dir is not None else None
    if record is not None and not _is_file(record):
        try:
            write_json_atomic(record, {"identity": model.identity(), "preprocess_id": pid})
        except OSError as exc:  # an unusable cache folder must not stop the evaluation (the cache warns too)
            log.warning("cannot record the preprocessing of %s in %s: %s", model.identity(), cache_dir, exc)
    return pid


def adapter_preprocess_id(adapter) -> str:
    return adapter.preprocess_id()  # ModelAdapter's default: the class name


def _record_path(cache_dir, identity: str | None) -> Path | None:
    # the identity changes whenever weights or preprocessing change, so it keys the record
    return None if identity is None else Path(cache_dir).expanduser() / "models" / f"{stable_hash(identity)}.json"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a parent is a file, or unreadable
        return False
