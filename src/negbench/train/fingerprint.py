"""Resume safety: a run resumes only with the settings (and data) it was started with.

The fingerprint is every TrainConfig field that changes the numbers, plus content digests of
the training data; it is written next to each checkpoint and compared before anything is
written on resume, so a changed lr or seed is refused (naming the keys) instead of silently
mixing two runs and overwriting config.json.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from negbench.core.errors import ConfigError
from negbench.core.fingerprint import differing_keys, folder_or_file_digest
from negbench.core.io import read_json, write_json_atomic

log = logging.getLogger(__name__)
FINGERPRINT_NAME = "fingerprint.json"
# where and how often to log, save, evaluate, or on which device/threads: no effect on the weights
NOT_IN_FINGERPRINT = {"out", "stop_after", "device", "num_threads", "tensorboard", "log_every", "save_every",
                      "eval_tasks", "eval_every", "eval_data_root", "recipe"}
DATA_FIELDS = ("negcap", "negmcq", "corpus", "images")


def train_fingerprint(cfg) -> dict:
    fp = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_FINGERPRINT}
    for name in DATA_FIELDS:
        if getattr(cfg, name, None):
            fp[f"{name}_digest"] = folder_or_file_digest(getattr(cfg, name))
    return fp


def write_fingerprint(run_dir: Path, cfg) -> None:
    write_json_atomic(Path(run_dir) / FINGERPRINT_NAME, train_fingerprint(cfg))


def check_resume(run_dir: Path, cfg, force: bool = False) -> None:
    """ConfigError listing the differing keys when cfg is not the run's; `force` only warns."""
    path = Path(run_dir) / FINGERPRINT_NAME
    if not path.exists():
        return
    try:
        stored = read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); delete it to resume anyway") from None
    diff = differing_keys(stored, train_fingerprint(cfg))
    if not diff:
        return
    msg = f"{run_dir}: the checkpoint was made with other settings: {'; '.join(diff)}"
    if not force:
        raise ConfigError(msg + ". Rerun with the original settings, use another --out, or --force to resume anyway")
    log.warning("%s; resuming anyway (--force)", msg)


def trim_log(path: Path, step: int) -> None:
    """Drop log records after the checkpoint's step: the resumed run writes those steps again."""
    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                kept.append(line)
        except (ValueError, AttributeError, TypeError):
            continue  # a line cut by the interruption
    from negbench.core.io import write_text_atomic

    write_text_atomic(path, "".join(k + "\n" for k in kept))
