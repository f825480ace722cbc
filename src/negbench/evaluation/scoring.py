"""One scoring function per task kind, one signature: `score(run, outputs) -> Scored`.

`outputs` is what the model produced for the task: `Embeddings` (evaluation/embed.py) from a
model that embeds, or `Answers` (evaluation/generative.py) from a model that answers. A kind
scores the outputs it can use; SCORERS is keyed by the kind's name (inputs/kinds.py holds what a
kind *is*; this module how it is scored), so adding a kind is a TaskKind there and a scorer here.

Definitions (docs/contracts.md; they match the published evaluation exactly):
- MCQ / binary MCQ from embeddings: scores = cosine of the L2-normalised media and option
  embeddings, prediction = argmax (ties -> option 0, the published rule); tie-aware accuracy
  credits 1/m when the right option is one of m sharing the top score.
- MCQ from answers: the parsed answer (choice) or the argmax of the option log-probabilities
  (likelihood); an unparsed or unscored question counts as wrong.
- Retrieval: text->media R@k = share of captions whose own medium is in torch.topk of its
  scores; media->text R@k = share of media with one of their captions in their top k.
- t2i-selection: per caption, argmax over its K candidate images (ties -> the lowest index).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from negbench.core.negation_parse import single_negated_object
from negbench.core.registry import Registry
from negbench.evaluation import metrics
from negbench.evaluation.embed import Embeddings
from negbench.evaluation.generative import Answers
from negbench.evaluation.run import NonFiniteScores, NotApplicable, TaskRun
from negbench.evaluation.schema import template_accuracies
from negbench.evaluation.selection import selection_scores, tie_aware_credit as selection_credit, top_ties
from negbench.inputs.formats import infer_option_type
from negbench.inputs.kinds import RETRIEVAL_KS


@dataclass
class Scored:
    metrics: dict
    breakdowns: dict | None
    table: dict                      # per-item (or per-caption) Parquet columns
    counts: dict = field(default_factory=dict)
    chance: float | None = None      # when the kind has no fixed chance (selection: mean 1/K)


SCORERS: Registry[Callable[[TaskRun, object], Scored]] = Registry("task kind scorer")


def scorer(kind: str):
    def register(fn):
        SCORERS.register(kind, fn)
        return fn
    return register


def score_task(run: TaskRun, outputs) -> Scored:
    return SCORERS.get(run.spec.kind)(run, outputs)


def _ci(values, cfg) -> dict:
    return metrics.mean_with_ci(values, n_samples=cfg.bootstrap_samples, seed=cfg.seed)


def _option_types(item) -> list[str]:
    return list(item.caption_types) if item.caption_types else [infer_option_type(c) for c in item.captions]


def _need_embeddings(run: TaskRun, outputs, what_it_does: str) -> None:
    """A kind scored from embeddings, given a generative model's answers: not applicable."""
    if not isinstance(outputs, Embeddings):
        raise NotApplicable(f"task {run.spec.name!r} is {run.spec.kind}: it {what_it_does}, which a generative "
                            f"model does not give")


def _check_finite_scores(run: TaskRun, scores: np.ndarray) -> None:
    bad = ~np.isfinite(scores).all(axis=1)
    if bad.any():
        row = run.data.items[int(np.flatnonzero(bad)[0])].row
        raise NonFiniteScores(f"model {run.model_name} on task {run.spec.name}: non-finite scores for "
                              f"{int(bad.sum())} items, the first at row {row} of {run.task_file}; nothing was scored")


# ---------------------------------------------------------------- choice kinds (MCQ, binary MCQ)

def choice_scores(run: TaskRun, emb: Embeddings) -> np.ndarray:
    """(N, K) scores of every question's options against its medium."""
    if emb.choice_scores is not None:   # near ties rescored at fp32 (evaluation/rescore.py)
        return emb.choice_scores
    cap_pos = emb.caption_index()
    option_index = np.array([[cap_pos[c] for c in it.captions] for it in run.data.items])
    item_media = emb.first_media()
    matrix = model_similarity(run, emb)
    if matrix is not None:
        return np.asarray(matrix, dtype=np.float64)[item_media[:, None], option_index]
    return metrics.mcq_scores(emb.media_emb, emb.text_emb, item_media, option_index,
                              device=getattr(run.model, "device", None))


def model_similarity(run: TaskRun, emb: Embeddings):
    """The model's own (M, T) scores when it declares it scores media against captions itself."""
    from negbench.evaluation.lazy_model import loaded
    from negbench.models.base import SIMILARITY

    if SIMILARITY not in run.model.capabilities:
        return None
    return loaded(run.model).similarity(emb.media_emb, emb.text_emb)


@scorer("mcq")
@scorer("binary-mcq")
def score_choice(run: TaskRun, outputs) -> Scored:
    if isinstance(outputs, Embeddings):
        scores = choice_scores(run, outputs)
        _check_finite_scores(run, scores)
        predicted = metrics.mcq_predictions(scores)
        return _choice_result(run, predicted, scores=scores, media_paths=outputs.media_paths,
                              item_media=outputs.first_media())
    return _choice_result(run, outputs.predicted, answers=outputs)


def _choice_result(run: TaskRun, predicted: np.ndarray, *, scores=None, answers: Answers | None = None,
                   media_paths=None, item_media=None) -> Scored:
    """Metrics, breakdowns and the per-item table of a choice task; predicted -1 = no answer."""
    items, cfg = run.data.items, run.cfg
    correct = np.array([it.correct_answer for it in items])
    is_correct = predicted == correct
    types = [_option_types(it) for it in items]
    # binary files have no template column: group by the type of the correct option instead
    groups = [it.template or types[i][it.correct_answer] for i, it in enumerate(items)]
    res = {"accuracy": _ci(is_correct, cfg)}
    if scores is not None:
        res["accuracy_tie_aware"] = _ci(metrics.tie_aware_credit(scores, correct), cfg)
    by_group = metrics.accuracy_by_group(is_correct, groups, n_samples=cfg.bootstrap_samples, seed=cfg.seed)
    per_template, breakdowns = template_accuracies(by_group, run.spec.task_kind.reports_templates(items))
    res.update(per_template)
    answered = np.flatnonzero(predicted >= 0)
    a_types = [types[i] for i in answered]
    breakdowns.update(
        wrong_answer_type_shares=metrics.wrong_answer_type_shares(predicted[answered], correct[answered], a_types),
        confusion=metrics.confusion_table(predicted[answered], correct[answered],
                                          [groups[i] for i in answered], a_types))
    chosen = [types[i][int(p)] if p >= 0 else "unparsed" for i, p in enumerate(predicted)]
    table = {"row": [it.row for it in items], "media": [it.media for it in items],
             "media_path": ([str(media_paths[i]) for i in item_media] if media_paths is not None
                            else [str(run.media_file(it.media)) for it in items]),
             "correct_answer": correct, "predicted": predicted, "is_correct": is_correct,
             "template": [it.template for it in items], "chosen_type": chosen,
             "negated_object": [single_negated_object(it.captions[it.correct_answer]) for it in items]}
    for j in range(len(items[0].captions)):
        table[f"caption_{j}"] = [it.captions[j] for it in items]
    counts = {}
    if scores is not None:
        table["scores"] = [list(map(float, s)) for s in scores]
        counts["ties"] = int(metrics.tied_questions(scores).sum())
        # questions whose top two scores are closer than this precision's rounding: a change of
        # precision alone could flip them (metrics.near_tie_count)
        counts["near_ties"] = metrics.near_tie_count(scores, run.precision)
    if answers is not None:
        res.update({key: _ci(other == correct, cfg) for key, other in answers.extra_metrics.items()})
        breakdowns.update(answers.breakdowns, unparsed_by_template=_unanswered_by_group(predicted, groups),
                          request_errors=answers.failures)
        table.update(answers.columns)
        counts.update(unparsed=answers.unparsed, request_errors=answers.unanswered)
    return Scored(res, breakdowns, table, counts)


def _unanswered_by_group(predicted: np.ndarray, groups: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in np.flatnonzero(predicted < 0):
        out[groups[i]] = out.get(groups[i], 0) + 1
    return dict(sorted(out.items()))


# ---------------------------------------------------------------- retrieval

@scorer("retrieval")
def score_retrieval(run: TaskRun, outputs) -> Scored:
    _need_embeddings(run, outputs, "ranks embeddings")
    items, cfg = run.data.items, run.cfg
    cap_pos = outputs.caption_index()
    item_media = outputs.first_media()
    occ_caption = [cap_pos[c] for it in items for c in it.captions]
    occ_item = [i for i, it in enumerate(items) for _ in it.captions]
    owner = item_media[occ_item]
    matrix = model_similarity(run, outputs)
    if matrix is not None:  # the model's own scores, ranked as the cosine would be
        s = np.asarray(matrix, dtype=np.float32)
        t2i, ranks = metrics.text_to_image_hits(s.T[occ_caption], np.eye(s.shape[0], dtype=np.float32), owner,
                                                RETRIEVAL_KS, normalize=False)
        i2t = _image_to_text_from_matrix(s[:, occ_caption], owner)
    else:
        device = getattr(run.model, "device", None)
        t2i, ranks = metrics.text_to_image_hits(outputs.text_emb[occ_caption], outputs.media_emb, owner,
                                                RETRIEVAL_KS, device=device)
        i2t = metrics.image_to_text_hits(outputs.media_emb, outputs.text_emb[occ_caption], owner,
                                         RETRIEVAL_KS, device=device)
    res = {f"t2i_recall@{k}": _ci(t2i[k], cfg) for k in RETRIEVAL_KS}
    res.update({f"i2t_recall@{k}": _ci(i2t[k], cfg) for k in RETRIEVAL_KS})
    table = {"row": [items[i].row for i in occ_item], "media": [items[i].media for i in occ_item],
             "media_path": [str(outputs.media_paths[m]) for m in owner],
             "caption": [c for it in items for c in it.captions], "t2i_rank": ranks,
             "negated_object": [single_negated_object(c) for it in items for c in it.captions]}
    return Scored(res, None, table, {"gallery": len(outputs.media_paths)})


def _image_to_text_from_matrix(scores: np.ndarray, owner: np.ndarray) -> dict[int, np.ndarray]:
    """media->text hits from an (M, T) score matrix: torch.topk per medium, as the cosine path."""
    import torch

    s = torch.as_tensor(scores)
    own = torch.as_tensor(owner)[None, :] == torch.arange(s.shape[0])[:, None]   # (M, T)
    out = {}
    for k in RETRIEVAL_KS:
        idx = torch.topk(s, min(k, s.shape[1]), dim=1).indices
        out[k] = own.gather(1, idx).any(dim=1).numpy()
    return out


# ---------------------------------------------------------------- t2i-selection

@scorer("t2i-selection")
def score_selection(run: TaskRun, outputs) -> Scored:
    _need_embeddings(run, outputs, "compares image embeddings with a caption's")
    items, cfg = run.data.items, run.cfg
    cap = outputs.caption_index()
    matrix = model_similarity(run, outputs)
    if matrix is not None:
        m = np.asarray(matrix, dtype=np.float64)
        scores = [m[list(media), cap[it.caption]] for it, media in zip(items, outputs.item_media)]
    else:  # rows may differ in K, so one row at a time
        scores = [selection_scores(outputs.text_emb, outputs.media_emb, [cap[it.caption]], [list(media)])[0]
                  for it, media in zip(items, outputs.item_media)]
    for s, it in zip(scores, items):
        if not np.isfinite(s).all():
            raise NonFiniteScores(f"model {run.model_name} on task {run.spec.name}: non-finite scores at "
                                  f"row {it.row} of {run.task_file}; nothing was scored")
    correct = np.array([it.correct_answer for it in items])
    pred = np.array([int(np.argmax(s)) for s in scores])
    credit = np.array([selection_credit(s[None], [c])[0] for s, c in zip(scores, correct)])
    res = {"accuracy": _ci(pred == correct, cfg), "accuracy_tie_aware": _ci(credit, cfg)}
    table = {"row": [it.row for it in items], "caption": [it.caption for it in items],
             "media": [json.dumps(list(it.media)) for it in items], "correct_answer": correct,
             "predicted": pred, "is_correct": pred == correct, "scores": [list(map(float, s)) for s in scores]}
    ties = int(sum(top_ties(s[None])[0] > 1 for s in scores))
    return Scored(res, None, table, {"ties": ties}, chance=float(np.mean([1.0 / len(it.media) for it in items])))
