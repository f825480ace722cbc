"""Data-parallel evaluation: the engine's unique inputs (or questions) split across ranks.

    torchrun --nproc_per_node 2 -m negbench.eval --model M --suite S ...      (one node)
    torchrun --nnodes 2 --node_rank K --master_addr HOST --nproc_per_node 8 -m negbench.eval ...
    negbench eval --shard i/n ...   then   negbench eval ...    (no process group: SLURM arrays)

Two ways to split, one rule for what each part computes:
- a process group (torchrun sets RANK / WORLD_SIZE; gloo on the CPU, nccl on GPUs): rank 0 reads
  the cache and tells every rank what is missing; the missing inputs are cut into the batches one
  process would form, the batches dealt to the ranks (balanced by cost: frames per video, tokens
  per caption batch), each rank encodes its batches and adds them to its cache, the embeddings
  are all-gathered, and every rank scores (the same numbers); rank 0 alone writes results and
  prints. Generative VLMs: the questions' generate batches are dealt the same way (a stride over
  batches), the answers gathered in question order.
- `--shard i/n` (no process group): shard i encodes the missing inputs of its batches into the
  cache and writes no result; the batches are cut from *all* of the task's inputs, so a shard's
  part does not depend on what the others have already cached. A final run without --shard
  scores from the cache and loads no weights.

Why the numbers equal one process's to the last bit: an embedding depends on its batch mates
through the forward pass's float rounding (matrix shapes, a causal tower's batch length). Each
rank runs exactly the batches one process would run on the same missing inputs (whole batches
are dealt, never split), so every embedding is computed from the same batch as in one process.

A rank that fails stops every rank: an exception is exchanged at the next gather (bad input,
a NegbenchError, is raised as is on every rank, as it would be in one process; anything else
becomes RankFailed naming the rank), and a rank that dies (killed, out of memory) breaks the
gather of the others (gloo: at once; nccl: the exchange runs on a gloo group for that reason).
What each rank computed is already in its cache, so the same command run again resumes.
"""
from __future__ import annotations

import atexit
import logging
import os
import pickle
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from negbench.core.errors import ConfigError, NegbenchError

log = logging.getLogger(__name__)
FLUSH_INPUTS = 2048   # embeddings a rank adds to the cache at a time: what a killed run loses at most
_state: dict[str, Any] = {}   # the gloo group for object exchange, a follower's real stderr


class RankFailed(NegbenchError):
    """A rank stopped (killed, crashed, an unexpected error): every rank stops; a rerun resumes
    from what the ranks cached."""


@dataclass(frozen=True)
class Ranks:
    """Which part of the work this process does: rank of world_size, joined by a process group
    (torchrun) or not (--shard i/n)."""

    rank: int = 0
    world_size: int = 1
    grouped: bool = False

    @property
    def is_shard(self) -> bool:
        return self.world_size > 1 and not self.grouped

    @property
    def writes_results(self) -> bool:
        return self.rank == 0 and not self.is_shard


def ranks_for(cfg) -> Ranks:
    """The split this evaluation runs under: cfg.shard, else the ranks start_ranks joined, else
    one process. A process group that someone else started (the trainer's DDP group, whose rank 0
    evaluates alone while the others wait) splits nothing: only start_ranks opts in."""
    if cfg.shard is not None:
        return Ranks(cfg.shard[0], cfg.shard[1], grouped=False)
    dist = sys.modules.get("torch.distributed")  # never imported: certainly no process group
    if _state.get("joined") and dist is not None and dist.is_initialized() and dist.get_world_size() > 1:
        return Ranks(dist.get_rank(), dist.get_world_size(), grouped=True)
    return Ranks()


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; anything else names the flag."""
    i, sep, n = text.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise ConfigError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return shard


def check_shard(shard, cache_dir) -> None:
    """EvalConfig's check of `shard`: (i, n) integers, and a cache to put the shard's part into."""
    if shard is None:
        return
    if (not isinstance(shard, tuple) or len(shard) != 2 or not all(isinstance(x, int) for x in shard)
            or not (shard[1] >= 1 and 0 <= shard[0] < shard[1])):
        raise ConfigError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
    if cache_dir is None:
        raise ConfigError("--shard i/n puts its part of the embeddings into the cache, and a final run reads "
                          "them from there: it needs the cache (drop --no-cache)")


# ---------------------------------------------------------------- joining the ranks

def start_ranks(cfg):
    """Join torchrun's process group when WORLD_SIZE > 1 (gloo on the CPU, nccl on GPUs), so that
    every later evaluation of this process splits its work across the ranks, and return cfg with
    this rank's device (cuda:LOCAL_RANK for 'cuda' or no --device on a GPU machine); cfg as is in
    one process. The Python API's way in: `cfg = start_ranks(EvalConfig(...))` on every rank, then
    evaluate_task as usual. Ranks other than 0 print nothing: their stdout and stderr go to
    /dev/null (a crash's traceback still shows), rank 0 reports for all."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return cfg
    if cfg.shard is not None:
        raise ConfigError("--shard i/n is for runs without a process group (SLURM arrays, separate machines); "
                          "under torchrun the ranks split the work themselves: drop --shard")
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = cfg.device
    on_cuda = device.startswith("cuda") if device else torch.cuda.is_available()
    if on_cuda:
        device = f"cuda:{local}" if device in (None, "cuda") else device
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if on_cuda else "gloo")
        atexit.register(_leave)
    # objects travel on a gloo group: with nccl a dead peer would hang the others until the
    # collective timeout; gloo reports a closed connection at once
    _state["group"] = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    _state["joined"] = True
    _stop_on_sigterm(rank, world)
    if rank:
        _quiet_follower()
    return cfg.with_overrides(device=device) if device != cfg.device else cfg


def _stop_on_sigterm(rank: int, world: int) -> None:
    """torchrun SIGTERMs the surviving ranks as soon as one dies; a rank still computing its own
    part then never reaches the gather that would name the dead one. The signal becomes the same
    one-line RankFailed, so the user reads what happened and how to resume, not a traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():   # signal handlers: main thread only
        return
    who = f"rank {1 - rank}" if world == 2 else "another rank"

    def stop(signum, frame):
        raise RankFailed(f"{who} stopped during the evaluation (torchrun stopped rank {rank} after it; or the job "
                         f"was cancelled); every rank stopped. What each rank computed is in its embedding cache: "
                         f"run the same command again to resume")
    signal.signal(signal.SIGTERM, stop)


def _leave() -> None:
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_initialized():
        dist.destroy_process_group()


def _quiet_follower() -> None:
    """Rank > 0: nothing on the console but a crash's traceback (rank 0 prints results, progress
    and errors for every rank, since every rank raises the same error)."""
    real = sys.stderr
    _state["stderr"] = real
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    logging.getLogger("negbench").setLevel(logging.CRITICAL)
    sys.excepthook = lambda *exc: sys.__excepthook__(*exc) if real is None else _print_traceback(real, exc)


def _print_traceback(stream, exc) -> None:
    import traceback

    traceback.print_exception(*exc, file=stream)


# ---------------------------------------------------------------- exchanging

def _dist():
    import torch.distributed as dist

    return dist


def _lost(ranks: Ranks, exc: BaseException) -> RankFailed:
    """The error of a rank whose gather broke: a peer died. With two ranks the dead one is known."""
    who = f"rank {1 - ranks.rank}" if ranks.world_size == 2 else "another rank"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    cause = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0]   # gloo: "[.../pair.cc:561] Connection closed ..."
    err = RankFailed(f"{who} stopped during the evaluation ({cause[:200]}); every rank stopped. What each rank "
                     f"computed is in its embedding cache: run the same command again to resume")
    if ranks.rank and ranks.world_size == 2 and "stderr" in _state:  # rank 0 died: this rank reports
        print(f"negbench eval [rank {ranks.rank}]: error: {err}", file=_state["stderr"], flush=True)
    return err


def _gather_objects(ranks: Ranks, obj) -> list:
    dist = _dist()
    out = [None] * ranks.world_size
    try:
        dist.all_gather_object(out, obj, group=_state.get("group"))
    except RuntimeError as exc:  # gloo: "Connection closed by peer" (DistBackendError is one)
        raise _lost(ranks, exc) from None
    return out


def _portable(exc: NegbenchError) -> bytes:
    """The exception pickled so that it unpickles (else a NegbenchError of the same message)."""
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)
        return blob
    except Exception:  # noqa: BLE001 - a custom __init__ that does not round-trip: keep the message
        return pickle.dumps(NegbenchError(str(exc)))


def gather(ranks: Ranks, compute: Callable[[], Any]) -> list:
    """compute() on this rank; every rank's value in rank order ([value] without a process group).

    An error on any rank is raised on every rank: a NegbenchError (bad input, the same as one
    process raises) as it is, anything else as RankFailed naming the rank."""
    if not ranks.grouped:
        return [compute()]
    try:
        mine = ("ok", compute())
    except NegbenchError as exc:
        mine = ("error", _portable(exc))
    except Exception as exc:  # noqa: BLE001 - any crash of this rank stops every rank (re-raised below)
        log.debug("rank %d failed", ranks.rank, exc_info=True)
        mine = ("crash", f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    parts = _gather_objects(ranks, mine)
    for r, (status, payload) in enumerate(parts):
        if status == "error":
            raise pickle.loads(payload)
        if status == "crash":
            raise RankFailed(f"rank {r} failed: {payload}; every rank stopped. What each rank computed is in its "
                             f"embedding cache: run the same command again to resume")
    return [payload for _, payload in parts]


def from_rank0(ranks: Ranks, compute: Callable[[], Any]):
    """compute() on rank 0, its value on every rank (a view of the cache or the results folder
    that all ranks must share, even when each node has its own folder)."""
    if not ranks.grouped:
        return compute()
    return gather(ranks, compute if ranks.rank == 0 else (lambda: None))[0]


# ---------------------------------------------------------------- splitting the work

def batches(order: Sequence[int], batch_size: int) -> list[list[int]]:
    """The batches one process forms: `order` cut into consecutive runs of batch_size."""
    order = list(order)
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def deal(costs: Sequence[float], n: int) -> list[list[int]]:
    """Units (batches) to n ranks, balanced by cost: the costliest first, each to the rank with
    the least so far (ties: the lower index); each rank's units in ascending order. Deterministic."""
    loads, out = [0.0] * n, [[] for _ in range(n)]
    for b in sorted(range(len(costs)), key=lambda b: (-costs[b], b)):
        r = min(range(n), key=lambda k: (loads[k], k))
        out[r].append(b)
        loads[r] += costs[b]
    return [sorted(x) for x in out]


def encoder_calls(mine: Sequence[Sequence[int]], batch_size: int, flush: int = FLUSH_INPUTS) -> list[list[int]]:
    """A rank's batches joined into encoder calls that cut them exactly as they are: a call ends
    after a batch that is not full (the encoder would otherwise fill it from the next) and at
    about `flush` inputs (then the cache gains them: a killed run loses at most that much)."""
    calls, current = [], []
    for b in mine:
        if not b:
            continue
        current += list(b)
        if len(b) < batch_size or len(current) >= flush:
            calls.append(current)
            current = []
    if current:
        calls.append(current)
    return calls


def my_batches(ranks: Ranks, planned: list[list[int]], costs: Sequence[float]) -> list[list[int]]:
    return [planned[b] for b in deal(costs, ranks.world_size)[ranks.rank]]


def question_calls(ranks: Ranks, todo: Sequence[int], n_questions: int, batch_size: int,
                   per_call: int) -> list[list[int]]:
    """The questions this rank asks, as calls of the generative backend.

    One process asks `todo` in calls of per_call questions, which the backend cuts into generate
    batches of batch_size. Ranks are dealt those generate batches (a stride over batches) and ask
    one batch per call, so every batch is one that one process would run: a padded batch's
    rounding, and so a greedy answer, cannot depend on the number of ranks. A shard cuts the
    batches from all questions (its part does not depend on what others have cached)."""
    if ranks.world_size == 1:
        return batches(todo, per_call)
    units = range(n_questions) if ranks.is_shard else todo
    planned = [b for call in batches(units, per_call) for b in batches(call, batch_size)]
    wanted = set(todo)
    mine = ([i for i in b if i in wanted] for b in my_batches(ranks, planned, [len(b) for b in planned]))
    return [b for b in mine if b]


# ---------------------------------------------------------------- what the results record

def result_record(ranks: Ranks, run_counts: dict) -> dict:
    """results["distributed"]: the world size and how many inputs each rank computed (the
    embed / answer steps put {"media": [per rank], "captions": [...]} into run.counts)."""
    return {"world_size": ranks.world_size, "computed_by_rank": dict(run_counts.get("computed_by_rank") or {})}


def shard_report(run, ranks: Ranks) -> dict:
    """What a --shard run returns (and the CLI prints) instead of a result: nothing is scored."""
    return {"status": "shard", "shard": f"{ranks.rank}/{ranks.world_size}", "task": {"name": run.spec.name},
            "model": run.model_name, "cache": dict(run.cache), "items": len(run.data.items),
            "computed": dict(run.counts.get("computed_by_rank") or {})}


def format_shard(report: dict) -> str:
    c = report["cache"]
    done = ", ".join(f"{what} {sum(counts)}" for what, counts in report["computed"].items()) or "nothing"
    return (f"{report['task']['name']}  shard {report['shard']}: cached {done} (of the task's missing inputs: "
            + ", ".join(f"{k.split('_')[0]} {c[k]}" for k in c if k.endswith("_misses"))
            + "); no result written: run the same command without --shard to score from the cache")
