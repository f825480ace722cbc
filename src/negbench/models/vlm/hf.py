"""`vlm:hf:ID_OR_DIR`: a transformers image-text-to-text model, prompted exactly as transformers does.

Loaded with AutoProcessor + AutoModelForImageTextToText (LLaVA, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL,
Idefics3, SmolVLM, PaliGemma, Gemma 3, Mllama, ... whatever the installed transformers maps there).

Prompts: the processor's own `apply_chat_template(messages, tokenize=True, return_dict=True,
add_generation_prompt=True)` with the images in the messages, so the input ids are the ones a
plain transformers user gets (one BOS for Gemma 3 / Mllama, whose templates already write it).
A processor without a chat template (PaliGemma's) gets the images and the prompt text as its
own `__call__` formats them. Generation is greedy and batched (left padding).

Likelihood (log p(option | images, prompt)) continues the prompt the way `generate` does: the
model's own `prepare_inputs_for_generation` and `_update_model_kwargs_for_generation` give the
position ids (Qwen2-VL's 3-D rotary positions included), attention mask and token types of the
option tokens. Mode `cached-prefix` runs the image+prompt prefix once and all options of a
question in one batched pass over its key/value cache; mode `full-forward` runs prefix+option
once per option. On its first question the adapter runs both and keeps `cached-prefix` only if
it agrees with `full-forward` (a model that cannot continue from a cache falls back); the mode
used is `self.likelihood_mode`.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from negbench.core.errors import ConfigError
from negbench.models.hub_cache import cached_hub_commit
from negbench.models.vlm.base import Answer, GenerativeAdapter, Query, chat_messages

log = logging.getLogger(__name__)

CACHED, FULL = "cached-prefix", "full-forward"
# bumped whenever the token ids sent for a question change (cached answers must not be reused)
PROMPT_VERSION = "chat-template-tokenized-1"
# how far the cached continuation may drift from full forward passes before it is not trusted
_MODE_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 1e-1}
# what a model that cannot continue from a cache raises while trying
_CONTINUATION_ERRORS = (RuntimeError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                        NotImplementedError)


def _source_identity(source: str, commit: str | None = None) -> str | None:
    """A local folder: the content digest of its files (config, processor, tokenizer, weights; the
    same digest as the result fingerprint, memoised by negbench.core.filehash). A hub id: the id
    and its commit (`commit`: the loaded config's; else, offline only, the one the local hub cache
    resolves 'main' to, which is what from_pretrained then loads). None when it cannot be known."""
    from negbench.core.fingerprint import folder_or_file_digest

    folder = Path(source).expanduser()
    if folder.is_dir():
        return f"dir:{folder_or_file_digest(folder)}"
    commit = commit or (cached_hub_commit(source) if _hub_offline() else None)
    return f"hub:{source}@{commit}" if commit else None


def _hub_offline() -> bool:
    """Online, from_pretrained may fetch a newer commit than the cache holds: unknown before loading."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _identity(precision: str, source_id: str) -> str:
    # the class transformers builds is fixed by config.json, which the source digest covers
    return f"hf-vlm:{precision}:{PROMPT_VERSION}:{source_id}"


def identity(spec: str, precision: str = "fp32") -> str | None:
    """HFVisionLanguageModel.identity() of `vlm:hf:SPEC` without loading anything (the vlm
    backend's MODEL_IDENTITIES entry, negbench.models.vlm.base.identity): a fully cached run
    then loads neither weights nor processor. None where the loader must decide (no such folder,
    a hub id while online)."""
    source_id = _source_identity(spec)
    return None if source_id is None else _identity(precision, source_id)


def check_source(source: str) -> None:
    """A local folder must exist; anything that can only be a path ('/x', './x', '~/x', 'a/b/c')
    and does not exist is 'no such folder', not a hub lookup error about repo id syntax."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"vlm:hf:{source}: is a file; expected a model folder or a hub id")
        return
    only_a_path = source.startswith(("/", ".", "~", "\\")) or source.count("/") > 1 or ":" in source
    if only_a_path:
        raise ConfigError(f"vlm:hf:{source}: no such folder")


def missing_package(exc: ImportError) -> str:
    """The one line for a processor/model that needs a package this environment lacks."""
    name = getattr(exc, "name", None)
    if not name:
        text = str(exc)
        m = re.search(r"pip install ([\w.\-\[\]]+)", text) or re.search(r"[Pp]ackage `?([\w.\-]+)`? is required", text) \
            or re.search(r"requires the ([\w.\-]+) librar", text)
        name = m.group(1).strip("`") if m else None
    if name:
        return f"needs the Python package '{name}', which is not installed (pip install {name})"
    return "needs a Python package that is not installed: " + str(exc).strip().splitlines()[0]


class HFVisionLanguageModel(GenerativeAdapter):
    supports_likelihood = True

    def __init__(self, source: str, device, precision: str = "fp32", likelihood_mode: str | None = None):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from negbench.models.base import precision_dtype

        if likelihood_mode not in (None, CACHED, FULL):
            raise ConfigError(f"likelihood_mode {likelihood_mode!r} not in {[CACHED, FULL]}")
        check_source(source)
        dtype = precision_dtype(precision)
        try:
            self.processor = AutoProcessor.from_pretrained(source)
            self.model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype)
        except ImportError as exc:
            raise ConfigError(f"vlm:hf:{source}: {missing_package(exc)}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"vlm:hf:{source}: cannot load an image-text-to-text model and its "
                              f"processor: {first}") from None
        self.model.to(device).eval()
        self.device, self.precision, self.source, self.dtype = device, precision, source, dtype
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ConfigError(f"vlm:hf:{source}: the processor has no tokenizer")
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        # "chat-template": the processor's chat template; "processor": none (PaliGemma), the
        # processor's own __call__ places the image tokens and the prompt
        self.prompt_mode = "chat-template" if getattr(self.processor, "chat_template", None) else "processor"
        # None until the first likelihood question decides (or the caller forces one)
        self.likelihood_mode: str | None = likelihood_mode
        commit = getattr(self.model.config, "_commit_hash", None)
        self._identity = _identity(precision, _source_identity(source, commit) or f"hub:{source}@unknown-revision")

    def identity(self) -> str:
        return self._identity

    # ------------------------------------------------------------------ prompts

    def sent_messages(self, query: Query, image_names: Sequence[str]) -> list[dict]:
        """The messages as sent (GenerativeAdapter.sent_messages). With the images loaded from the
        paths, `processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
        return_dict=True)` replays the question with plain transformers (without a chat template,
        PaliGemma: `processor(images=..., text=prompt)`)."""
        return super().sent_messages(query, image_names)

    def prompt_text(self, n_images: int, prompt: str) -> str:
        """The chat-templated user turn as text, ending with the assistant prefix (for display;
        what is sent is `inputs`, tokenized by the processor itself)."""
        if self.prompt_mode != "chat-template":
            return prompt
        return self.processor.apply_chat_template(chat_messages([None] * n_images, prompt), tokenize=False,
                                                  add_generation_prompt=True)

    def inputs(self, queries: Sequence[Query]):
        """Processor outputs (padded batch, on the model's device) for image(s)+prompt queries."""
        try:
            if self.prompt_mode == "chat-template":
                batch = self.processor.apply_chat_template(
                    [chat_messages(q.images, q.prompt) for q in queries], tokenize=True, return_dict=True,
                    add_generation_prompt=True, return_tensors="pt", processor_kwargs={"padding": True})
            else:
                batch = self._processor_call(queries)
        except ImportError as exc:  # e.g. a video/image backend the processor wants at call time
            raise ConfigError(f"vlm:hf:{self.source}: {missing_package(exc)}") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"vlm:hf:{self.source}: the processor cannot build this prompt "
                              f"({self.prompt_mode}): {str(exc).strip().splitlines()[0]}") from None
        batch.pop("labels", None)  # training targets some processors add; generation never reads them
        if self.dtype != self._fp32():  # pixel values in the weights' precision
            return batch.to(self.device, dtype=self.dtype)
        return batch.to(self.device)

    def _processor_call(self, queries: Sequence[Query]):
        """No chat template: the processor's own layout (PaliGemma: image tokens, BOS, prompt, newline).
        Its per-call advice to write the image tokens ourselves is silenced: placing them is its job."""
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            return self.processor(images=[list(q.images) for q in queries], text=[q.prompt for q in queries],
                                  padding=True, return_tensors="pt")
        finally:
            hf_logging.set_verbosity(level)

    @staticmethod
    def _fp32():
        import torch

        return torch.float32

    # ------------------------------------------------------------------ choice

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

    # ------------------------------------------------------------------ likelihood

    def option_ids(self, option: str) -> list[int]:
        """The tokens of an option as the assistant's answer (no special tokens)."""
        ids = self.tokenizer(option, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"{self.model_string}: option {option!r} has no tokens")
        return list(ids)

    def _prefix_kwargs(self, prefix, use_cache: bool) -> dict:
        """What `generate` holds for the prompt before its first forward pass: the processor's
        outputs (less input_ids) and the model's own position ids for them."""
        kwargs = {k: v for k, v in prefix.items() if k != "input_ids"}
        kwargs["position_ids"] = self.model._prepare_position_ids_for_generation(prefix["input_ids"], kwargs)
        kwargs["use_cache"] = use_cache
        return kwargs

    def _extend(self, kwargs: dict, n_tokens: int) -> dict:
        """Attention mask, position ids, token types (Mllama: cross-attention mask) for n_tokens
        more tokens, one token at a time as `generate` extends them."""
        for _ in range(n_tokens):
            kwargs = self.model._update_model_kwargs_for_generation({}, kwargs, is_encoder_decoder=False)
        return kwargs

    def _cached_prefix(self, prefix, ids: list[list[int]]) -> np.ndarray:
        """Scores from the prefix run once and all options in one pass over its key/value cache."""
        import torch

        model, prompt_ids = self.model, prefix["input_ids"]
        kwargs = self._prefix_kwargs(prefix, use_cache=True)
        out = model(**model.prepare_inputs_for_generation(prompt_ids, is_first_iteration=True, **kwargs),
                    return_dict=True)
        first = out.logits[:, -1:].float()
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        width = max(map(len, ids))
        kwargs = self._extend(kwargs, width)
        kwargs.pop("cache", None)
        _, kwargs = model._expand_inputs_for_generation(expand_size=len(ids), **kwargs)
        cache.batch_repeat_interleave(len(ids))  # one copy of the prefix per option
        # right-padded options: a pad follows every real token, so no real token ever sees one
        pad = self.tokenizer.pad_token_id or 0
        tokens = torch.tensor([i + [pad] * (width - len(i)) for i in ids], device=self.device)
        full = torch.cat([prompt_ids.expand(len(ids), -1), tokens], dim=1)
        inputs = model.prepare_inputs_for_generation(full, next_sequence_length=width, cache=cache,
                                                     is_first_iteration=False, **kwargs)
        logits = model(**inputs, return_dict=True).logits.float()
        # position t of an option's row predicts its token t+1; the prefix's last position its token 0
        logp = torch.log_softmax(torch.cat([first.expand(len(ids), -1, -1), logits[:, :-1]], dim=1), dim=-1)
        return np.array([_summed(logp[k], seq) for k, seq in enumerate(ids)], dtype=np.float64)

    def _full_forward(self, prefix, ids: list[list[int]]) -> np.ndarray:
        """The same scores, one forward pass over prefix+option per option (no cache)."""
        import torch

        model, prompt_ids, p = self.model, prefix["input_ids"], prefix["input_ids"].shape[1]
        scores = np.zeros((len(ids), 2), dtype=np.float64)
        for k, seq in enumerate(ids):
            kwargs = self._extend(self._prefix_kwargs(prefix, use_cache=False), len(seq))
            full = torch.cat([prompt_ids, torch.tensor([seq], device=self.device)], dim=1)
            logits = model(**model.prepare_inputs_for_generation(full, is_first_iteration=True, **kwargs),
                           return_dict=True).logits[0, p - 1:-1].float()
            scores[k] = _summed(torch.log_softmax(logits, dim=-1), seq)
        return scores

    def _decide_mode(self, prefix, ids) -> np.ndarray:
        """First likelihood question: cached-prefix if it runs and agrees with full forward passes."""
        full = self._full_forward(prefix, ids)
        try:
            cached = self._cached_prefix(prefix, ids)
        except _CONTINUATION_ERRORS as exc:
            log.warning("%s: cannot continue from a key/value cache (%s: %s); scoring each option with its own "
                        "forward pass", self.model_string, type(exc).__name__, str(exc).splitlines()[0][:200])
            self.likelihood_mode = FULL
            return full
        gap = float(np.max(np.abs(cached[:, 0] - full[:, 0])))
        if gap > _MODE_TOLERANCE.get(self.precision, 1e-3):
            log.warning("%s: cached continuation differs from full forward passes by %.3g; scoring each option "
                        "with its own forward pass", self.model_string, gap)
            self.likelihood_mode = FULL
        else:
            self.likelihood_mode = CACHED
        return full

    def option_logprobs(self, images, prompt: str, options: Sequence[str]) -> np.ndarray:
        import torch

        ids = [self.option_ids(o) for o in options]
        prefix = self.inputs([Query(tuple(images), prompt)])
        with torch.inference_mode():
            if self.likelihood_mode is None:
                return self._decide_mode(prefix, ids)
            passes = self._cached_prefix if self.likelihood_mode == CACHED else self._full_forward
            return passes(prefix, ids)


def _summed(logp, seq: list[int]) -> tuple[float, int]:
    """(sum of log p(token t) at row t, number of tokens): row t holds the log-softmax that predicts token t."""
    return float(sum(logp[t, tok] for t, tok in enumerate(seq))), len(seq)


def load(spec: str, device=None, precision: str = "fp32", **options) -> HFVisionLanguageModel:
    from negbench.models.base import pick_device

    return HFVisionLanguageModel(spec, pick_device(device) if not hasattr(device, "type") else device, precision,
                                 likelihood_mode=options.get("likelihood_mode"))
