"""The probe and published-numbers sections (the two that read inputs other than results)."""
from __future__ import annotations

import io
from pathlib import Path

from negbench.analysis.report import plots
from negbench.analysis.report.html import Doc
from negbench.analysis.report.load import ReportData, match_model
from negbench.analysis.published import published_rows
from negbench.analysis.report.tables import published_metric_name
from negbench.analysis.results import short_model
from negbench.core.io import write_bytes_atomic

COSINES = (("affirmative_vs_negated", "cos(X, no X)"), ("affirmative_vs_affirmative_reworded", "cos(X, X reworded)"),
           ("affirmative_vs_other_object", "cos(X, Y)"), ("affirmative_vs_double_negation", "cos(X, not no X)"))
PROBES = (("negated", "probe: negated?"), ("object", "probe: which object?"), ("type", "probe: type (4-way)"))


def _probe_label(data: ReportData, model: str) -> str:
    """The model's label in the results, whichever path the probe named its weights by."""
    same = match_model(model, data.models)
    return data.labels.get(same or model) or (data.label(same) if same else short_model(model))


def _informative_probes(probes: list[dict]) -> tuple[list, list[str]]:
    """Linear probes that tell the models apart (accuracy spread >= 2 pp); sentences for the rest."""
    keep, notes = [], []
    for key, name in PROBES:
        accs = [100 * p["probes"][key]["accuracy"] for p in probes if key in p["probes"]]
        if len(accs) > 1 and max(accs) - min(accs) < 2:
            notes.append(f"{name} reaches {min(accs):.1f}–{max(accs):.1f}% for every model, so it does not "
                         "tell them apart and is left out of the table.")
        elif accs:
            keep.append((key, name))
    return keep, notes


def _pca_row(data: ReportData, out: Path) -> Path | None:
    """The probes' PCA plots side by side in one image, titled by model label."""
    from PIL import Image, ImageDraw, ImageFont

    tiles = []
    for res in data.probes:
        plot = (res.get("pca") or {}).get("plot")
        if plot and Path(plot).exists():
            with Image.open(plot) as im:
                tiles.append((_probe_label(data, res["model"]), im.convert("RGB")))
    if not tiles:
        return None
    w = 1100 // len(tiles)
    scaled = [(lb, im.resize((w, max(1, round(im.height * w / im.width))))) for lb, im in tiles]
    h = max(im.height for _, im in scaled) + 24
    sheet = Image.new("RGB", (w * len(scaled), min(h, 700)), "white")
    draw = ImageDraw.Draw(sheet)
    try:  # a readable label (Pillow >= 10.1 scales its built-in font); the bitmap default is ~11 px
        font = ImageFont.load_default(size=18)
    except TypeError:
        font = ImageFont.load_default()
    for i, (lb, im) in enumerate(scaled):
        sheet.paste(im, (i * w, 24))
        draw.text((i * w + 8, 2), lb, fill="black", font=font)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return write_bytes_atomic(out / "probe_pca.png", buf.getvalue())


def probe_section(doc: Doc, data: ReportData, out: Path, opts) -> None:
    if not data.probes:
        doc.para("No probe results given (run `negbench probe-text --model M --out DIR`, then pass "
                 "DIR/probe.json with --probe).", "empty")
        return
    doc.para("Text tower only, on template captions. If 'X' vs 'no X' is as close as a rewording of 'X', the "
             "embedding barely moves when an object is negated.")
    keep, notes = _informative_probes(data.probes)
    header = ["model"] + [n for _, n in COSINES] + [n for _, n in keep]
    rows = [[_probe_label(data, p["model"])] + [f"{p['cosine'][k]:.3f}" for k, _ in COSINES]
            + [f"{100 * p['probes'][k]['accuracy']:.1f}% (chance {100 * p['probes'][k]['majority_baseline']:.1f}%)"
               for k, _ in keep] for p in data.probes]
    doc.table(header, rows)
    for n in notes:
        doc.para(n)
    png = _pca_row(data, out)
    if png:
        doc.figure(png, "PCA of caption embeddings per model")


def published_section(doc: Doc, data: ReportData, out: Path, opts) -> None:
    pub = published_rows(opts.published_csv)
    doc.raw('<div class="published">')
    doc.para("Numbers published by the NegBench authors for real models on the real benchmark data (arXiv "
             "2501.09425 Table 1 and the authors' results/mcq CSVs). They were NOT measured by this run.")
    pairs = plots.published_pairs(data, pub)
    if pairs:
        doc.para("Charted: results of this run on the same released files (" +
                 ", ".join(dict.fromkeys(t.split(",")[0] for t, _, _ in pairs)) + ") beside the published ones.")
        doc.figure(plots.published_figure(pairs, out / "measured_vs_published.png"),
                   "Measured here vs published, on the same released NegBench files")
    else:
        doc.para("No result of this run is on a released NegBench file the paper reports (NegWorld and your own "
                 "builds are other data), so nothing measured is charted beside these numbers.")
    doc.table(["model", "backbone", "dataset", "task", "metric", "value", "source"],
              [[p["model"], p["backbone"], p["dataset"], p["task"], published_metric_name(p["metric"]),
                f"{100 * float(p['value']):.1f}%", p["source"]] for p in pub])
    doc.raw("</div>")
