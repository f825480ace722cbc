"""`vlm:hf:ID_OR_DIR`: a transformers image-text-to-text model through its processor's chat template.

Loaded with AutoProcessor + AutoModelForImageTextToText (LLaVA, LLaVA-NeXT, Qwen2-VL, SmolVLM,
PaliGemma, Idefics, ... whatever the installed transformers maps there). Generation is greedy
and batched (left padding). The likelihood of the options of one image runs the image+prompt
prefix once and reuses its key/value cache for all options in one batched forward pass.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from negbench.core.errors import ConfigError
from negbench.core.io import stable_hash
from negbench.models.vlm.base import Answer, GenerativeAdapter, Query

log = logging.getLogger(__name__)


def _source_identity(source: str, config) -> str:
    """Local folder: names, sizes and mtimes of its files; hub id: the id and its commit."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return stable_hash(str(path.resolve()), [(str(p.relative_to(path)), p.stat().st_size,
                                                  p.stat().st_mtime_ns) for p in files])
    return stable_hash(source, getattr(config, "_commit_hash", None))


class HFVisionLanguageModel(GenerativeAdapter):
    supports_likelihood = True

    def __init__(self, source: str, device, precision: str = "fp32"):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from negbench.models.base import precision_dtype

        try:
            self.processor = AutoProcessor.from_pretrained(source)
            self.model = AutoModelForImageTextToText.from_pretrained(source, dtype=precision_dtype(precision))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"vlm:hf:{source}: cannot load an image-text-to-text model and its "
                              f"processor: {exc}") from None
        self.model.to(device).eval()
        self.device, self.precision, self.source = device, precision, source
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None or getattr(self.processor, "chat_template", None) is None:
            raise ConfigError(f"vlm:hf:{source}: the processor has no tokenizer or no chat template")
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        # transformers 5.x renamed past_key_values to cache; accept either
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._identity = f"hf-vlm:{type(self.model).__name__}:{precision}:" \
                         f"{_source_identity(source, self.model.config)}"

    def identity(self) -> str:
        return self._identity

    def prompt_text(self, n_images: int, prompt: str) -> str:
        """The chat-templated user turn with n_images images, ending with the assistant prefix."""
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def inputs(self, queries: Sequence[Query]):
        """Processor outputs (padded batch, on the model's device) for image(s)+prompt queries."""
        texts = [self.prompt_text(len(q.images), q.prompt) for q in queries]
        images = [list(q.images) for q in queries]
        batch = self.processor(images=images, text=texts, padding=True, return_tensors="pt")
        return batch.to(self.device)

    def choose(self, queries: Sequence[Query], *, max_new_tokens: int = 16, batch_size: int = 8,
               progress: bool = False) -> list[Answer]:
        import torch
        from tqdm.auto import tqdm

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.tokenizer.eos_token_id
        answers: list[Answer] = []
        for s in tqdm(range(0, len(queries), batch_size), desc="generate", unit="batch",
                      disable=not progress, leave=False):
            batch = self.inputs(queries[s:s + batch_size])
            with torch.inference_mode():
                out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                          pad_token_id=pad)
            new = out[:, batch["input_ids"].shape[1]:]
            answers += [Answer(t) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        return answers

    def option_ids(self, option: str) -> list[int]:
        """The tokens of an option as the assistant's answer (no special tokens)."""
        ids = self.tokenizer(option, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"{self.model_string}: option {option!r} has no tokens")
        return list(ids)

    def option_logprobs(self, images, prompt: str, options: Sequence[str]) -> np.ndarray:
        import torch

        ids = [self.option_ids(o) for o in options]
        prefix = self.inputs([Query(tuple(images), prompt)])
        with torch.inference_mode():
            out = self.model(**prefix, use_cache=True)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
            cache.batch_repeat_interleave(len(ids))  # one copy of the prefix per option
            width = max(map(len, ids))
            pad = self.tokenizer.pad_token_id or 0
            tokens = torch.tensor([i + [pad] * (width - len(i)) for i in ids], device=self.device)
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=self.device)
            mask = torch.cat([prefix["attention_mask"].expand(len(ids), -1), mask], dim=1)
            logits = self.model(input_ids=tokens, attention_mask=mask, use_cache=False,
                                **{self._cache_arg: cache}).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
        scores = np.zeros((len(ids), 2), dtype=np.float64)
        for k, seq in enumerate(ids):
            # token 0 is predicted by the prefix's last position, token t by option position t-1
            total = float(first[seq[0]]) + sum(float(logp[k, t - 1, seq[t]]) for t in range(1, len(seq)))
            scores[k] = (total, len(seq))
        return scores


def load(spec: str, device=None, precision: str = "fp32", **_options) -> HFVisionLanguageModel:
    from negbench.models.base import pick_device

    return HFVisionLanguageModel(spec, pick_device(device) if not hasattr(device, "type") else device, precision)
