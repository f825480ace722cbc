"""Tiny training fixtures shared by the built-in model and trainer tests."""
import json
from pathlib import Path

import numpy as np

TINY_TEXT = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=64)
TINY_MODEL = dict(text_config=TINY_TEXT, embed_dim=16, image_size=16, image_widths=[8, 16])
NAMES = ["apple", "ball", "car", "tree", "dog", "cat"]
COLOURS = {"apple": (220, 30, 30), "ball": (30, 30, 220), "car": (30, 200, 30), "tree": (20, 120, 20),
           "dog": (150, 100, 50), "cat": (240, 240, 240)}


def make_tiny_data(root: Path, n: int = 16, seed: int = 0) -> dict:
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows, caps, mcq = [], [], []
    for i in range(n):
        a = NAMES[i % len(NAMES)]
        absent = NAMES[(i + 2) % len(NAMES)]
        arr = np.full((16, 16, 3), 128, np.uint8)
        arr[4:12, 4:12] = COLOURS[a]
        arr += rng.integers(0, 10, arr.shape, dtype=np.uint8)
        Image.fromarray(arr).save(img_dir / f"{i}.png")
        fp = f"images/{i}.png"
        rows.append(f"{fp}\ta {a} number {i}")
        caps.append(dict(filepath=fp, caption=f"a {a} number {i}. There is no {absent}.",
                         original_caption=f"a {a} number {i}", negated_objects=[absent], template_set="t",
                         order="affneg"))
        opts = [f"This image features a {a}.", f"This image does not feature a {a}.",
                f"This image features a {absent}.", f"This image features a {absent}, but not a {a}."]
        k = i % 4
        opts[0], opts[k] = opts[k], opts[0]
        mcq.append(dict(filepath=fp, **{f"caption_{j}": o for j, o in enumerate(opts)}, correct_answer=k,
                        correct_answer_template="positive", caption_types=["positive"] * 4))
    (root / "corpus.tsv").write_text("filepath\tcaption\n" + "\n".join(rows) + "\n")
    for sub, recs in (("negcap", caps), ("negmcq", mcq)):
        (root / sub).mkdir(exist_ok=True)
        pd.DataFrame(recs).to_parquet(root / sub / "part-00000.parquet")
        (root / sub / "manifest.json").write_text(json.dumps({"image_root": str(root)}))
    return {"corpus": root / "corpus.tsv", "negcap": root / "negcap", "negmcq": root / "negmcq"}
