"""Trainer speed: samples/s of negbench's training step vs a minimal reference loop.

Both train the same open_clip model (random init, no download) on the same in-memory
batches with the same loss (0.5 contrastive + 0.5 MCQ, batch B pairs + B/2 questions).
Target: negbench >= 0.9x the reference.

    python bench/train_speed.py [--arch ViT-B-32] [--batch 32] [--steps 12] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def reference(adapter, store, pairs, mcq, args) -> float:
    """The smallest loop that does the same work: encode, loss, backward, clip, AdamW step."""
    from negbench.train.data import global_batch
    from negbench.train.losses import contrastive_loss, mcq_loss

    params = [p for p in adapter.module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    adapter.module.train()
    n_mcq = args.batch // 2
    t0 = None
    for step in range(args.steps):
        if step == args.warmup:
            if adapter.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
        idx = global_batch(len(pairs), step, args.batch, 0)
        imgs = store.get([pairs.images[i] for i in idx]).to(adapter.device)
        loss = 0.5 * contrastive_loss(adapter.encode_images(imgs),
                                      adapter.encode_texts([pairs.captions[i][0] for i in idx]),
                                      adapter.logit_scale())
        idx = global_batch(len(mcq), step, n_mcq, 1)
        imgs = store.get([mcq.images[i] for i in idx]).to(adapter.device)
        opts = adapter.encode_texts([o for i in idx for o in mcq.options[i]]).view(n_mcq, 4, -1)
        loss = loss + 0.5 * mcq_loss(adapter.encode_images(imgs), opts,
                                     torch.tensor([mcq.answers[i] for i in idx], device=adapter.device),
                                     adapter.logit_scale())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if adapter.device.type == "cuda":
        torch.cuda.synchronize()
    return (args.steps - args.warmup) * (args.batch + n_mcq) / (time.time() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from _train_fixtures import make_tiny_data
    from negbench.models.openclip import OpenClipAdapter, _create_unloaded, _import_open_clip
    from negbench.train.trainer import TrainConfig, load_data, train

    open_clip = _import_open_clip()

    def fresh():
        torch.manual_seed(0)
        model, preprocess = _create_unloaded(open_clip, args.arch)
        return OpenClipAdapter(model, preprocess, open_clip.get_tokenizer(args.arch), model_string=f"openclip:{args.arch}@random",
                               arch=args.arch, weights_id="random", device=torch.device(args.device))

    with tempfile.TemporaryDirectory() as tmp:
        data = make_tiny_data(Path(tmp) / "d", n=max(64, args.batch * 2))
        cfg = TrainConfig(model=f"openclip:{args.arch}@random", out=str(Path(tmp) / "run"), negcap=str(data["negcap"]),
                          negmcq=str(data["negmcq"]), clw=0.5, mlw=0.5, steps=args.steps, batch_size=args.batch,
                          mcq_batch_size=args.batch // 2, lr=1e-5, warmup_steps=1,
                          log_every=args.warmup, save_every=10 ** 9, device=args.device)
        adapter = fresh()
        store, pairs, mcq = load_data(adapter, cfg)
        store.get(range(len(store.paths)))
        ref = reference(adapter, store, pairs, mcq, args)
        train(cfg, adapter=fresh())
        recs = [json.loads(l) for l in open(Path(tmp) / "run" / "train" / "log.jsonl")]
        # samples/s over the steps after warmup, as logged by the trainer
        ours = sum(r["samples_per_s"] for r in recs[1:]) / max(1, len(recs[1:]))
    print(f"arch {args.arch}  device {args.device}  batch {args.batch}+{args.batch // 2} MCQ")
    print(f"reference loop : {ref:8.1f} samples/s")
    print(f"negbench trainer: {ours:8.1f} samples/s   ratio {ours / ref:.2f}x (target >= 0.9x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
