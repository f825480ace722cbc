"""The adapter interface every model family implements, and the model-string registry."""
from __future__ import annotations

import abc
import re
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from negbench.core.errors import ConfigError, NegbenchError
from negbench.core.registry import Registry

if TYPE_CHECKING:  # torch is imported lazily at run time
    import torch
    from PIL import Image

PRECISIONS = ("fp32", "fp16", "bf16")
# What a model can do; the evaluation engine asks `adapter.capabilities`, never the model string.
EMBED = "embed"                  # encode_images / encode_texts (dual encoders)
CHOOSE = "choose"                # answer a question with options in free text (generative VLMs)
SCORE_OPTIONS = "score_options"  # log p(option | media, prompt) per option (generative VLMs)
SIMILARITY = "similarity"        # scores media against captions itself (ModelAdapter.similarity)
CAPABILITIES = (EMBED, CHOOSE, SCORE_OPTIONS, SIMILARITY)
TOWERS = ("image", "text")
# the block number in a text-tower parameter name: open_clip 'transformer.resblocks.3.',
# transformers 'text_model.encoder.layers.3.', BERT-style 'encoder.layer.3.'
_TEXT_BLOCK_INDEX = re.compile(r"\.(?:resblocks|layers|layer)\.(\d+)\.")

# backend prefix -> "module:loader"; loader(spec: str, device, precision) -> ModelAdapter
MODEL_BACKENDS: Registry = Registry("model backend")
MODEL_BACKENDS.register("openclip", "negbench.models.openclip:load")
MODEL_BACKENDS.register("hf", "negbench.models.hf:load")
MODEL_BACKENDS.register("builtin", "negbench.models.builtin:load")
MODEL_BACKENDS.register("vlm", "negbench.models.vlm.base:load")  # generative VLMs (models/vlm/)
MODEL_BACKENDS.register("negaware", "negbench.models.negaware:load")  # training-free negation scorers
# backend prefix -> what its models can do, known before loading (a cached run loads no weights);
# backends not listed embed. A loaded adapter's own `capabilities` is the final word.
BACKEND_CAPABILITIES: dict[str, frozenset] = {"vlm": frozenset({CHOOSE, SCORE_OPTIONS})}
# backend prefix -> "module:identity"; identity(spec: str, precision) -> str | None, computed
# without building the model (from the string and file fingerprints), equal to the loaded
# adapter's identity(); None where that cannot be done cheaply
MODEL_IDENTITIES: Registry = Registry("model backend")
MODEL_IDENTITIES.register("openclip", "negbench.models.openclip:identity")
MODEL_IDENTITIES.register("hf", "negbench.models.hf:identity")
MODEL_IDENTITIES.register("builtin", "negbench.models.builtin:identity")
MODEL_IDENTITIES.register("negaware", "negbench.models.negaware:identity")
MODEL_IDENTITIES.register("vlm", "negbench.models.vlm.base:identity")  # generative VLMs (models/vlm/)
BACKEND_CAPABILITIES["negaware"] = frozenset({EMBED, SIMILARITY})  # decompose scores itself (similarity)


class ModelAdapter(abc.ABC):
    """What the evaluation engine and the trainer need from a dual encoder.

    encode_* return *unnormalised* features (the engine and the losses L2-normalise, so
    every model is scored the same way) and keep autograd on, so the trainer can use them;
    the engine wraps calls in torch.inference_mode().

    The trainer calls only the methods of this class (docs/contracts.md): `trainable_parameters`,
    `prepare_text_cache`, `mark_weights_changed`, `save`, the encoders, `logit_scale` /
    `logit_bias` and `module` (for state dicts and train/eval mode). Every method that is not
    abstract has a default that is right for a model without caches.
    """

    model_string: str              # the string that loads this model; load_model sets it
    capabilities: frozenset = frozenset({EMBED})
    device: "torch.device"
    module: "torch.nn.Module"      # every trainable parameter lives under this module
    weights_tag: str | None = None  # set by mark_weights_changed; part of identity()
    precision: str = "fp32"        # the dtype the weights were cast to once at load (PRECISIONS)

    def __repr__(self) -> str:  # what a notebook shows: the model string, not an object address
        name = getattr(self, "model_string", None) or type(self).__name__
        return f"<{type(self).__name__} {name} on {getattr(self, 'device', '?')}>"

    @abc.abstractmethod
    def identity(self) -> str:
        """A string that changes whenever the weights or preprocessing change (cache key)."""

    @abc.abstractmethod
    def preprocess(self, image: "Image.Image") -> "torch.Tensor":
        """PIL image -> (C, H, W) float tensor, exactly as the model was trained."""

    @abc.abstractmethod
    def encode_images(self, pixels: "torch.Tensor") -> "torch.Tensor":
        """(B, C, H, W) on any device -> (B, D) features."""

    @abc.abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> "torch.Tensor":
        """Strings -> (B, D) features (tokenisation inside)."""

    @abc.abstractmethod
    def logit_scale(self) -> "torch.Tensor":
        """exp(learned temperature) as a scalar tensor (trainable where the model has one)."""

    def logit_bias(self) -> "torch.Tensor | None":
        """The learned bias of a sigmoid-loss model (SigLIP); None for softmax (CLIP) models.

        The trainer fine-tunes a model with a bias using SigLIP's sigmoid loss, else InfoNCE.
        """
        return getattr(getattr(self, "module", None), "logit_bias", None)

    def clamp_logit_scale(self, max_scale: float = 100.0) -> None:
        """CLIP's clamp after an optimizer step: a learned logit scale of at most `max_scale`
        (temperature >= 1 / max_scale), so training cannot make the softmax arbitrarily sharp."""
        import math

        import torch

        scale = getattr(self.module, "logit_scale", None)
        if isinstance(scale, torch.nn.Parameter):
            with torch.no_grad():
                scale.clamp_(0, math.log(max_scale))

    @abc.abstractmethod
    def tower_parameters(self, tower: str) -> Iterator["torch.nn.Parameter"]:
        """Parameters of 'image' or 'text' tower (used to lock a tower while fine-tuning)."""

    def set_text_trainable_layers(self, k: int | None) -> None:
        """Train only the top k blocks of the text transformer and what follows them (final
        norm, projection / head); embeddings and lower blocks are frozen. None = the whole tower.

        Generic over open_clip (`...resblocks.N.`) and transformers (`...layers.N.`) names;
        the built-in model overrides it to also cache the frozen layers' outputs.
        """
        text_ids = {id(p) for p in self.tower_parameters("text")}
        named = [(n, p) for n, p in self.module.named_parameters() if id(p) in text_ids]
        index = {n: int(m.group(1)) for n, _ in named if (m := _TEXT_BLOCK_INDEX.search(n))}
        if not index:
            raise ConfigError(f"{type(self).__name__}: no numbered transformer blocks found in the text tower")
        n_layers = max(index.values()) + 1
        k = n_layers if k is None else k
        if not 0 <= k <= n_layers:
            raise ConfigError(f"trainable text layers {k} not in 0..{n_layers}")
        for name, p in named:
            if name in index:
                train = index[name] >= n_layers - k
            else:  # embeddings sit below block 0; norms and projections above the last block
                train = k == n_layers or "embed" not in name
            p.requires_grad_(train)

    def trainable_parameters(self, towers: Sequence[str] = TOWERS,
                             text_layers: int | None = None) -> list["torch.nn.Parameter"]:
        """Freeze every tower not in `towers` and, when the text tower trains, all but its top
        `text_layers` blocks (None = the whole tower); returns the parameters left to train."""
        unknown = sorted(set(towers) - set(TOWERS))
        if unknown:
            raise ConfigError(f"towers {unknown} not in {list(TOWERS)}")
        for tower in TOWERS:
            if tower not in towers:
                for p in self.tower_parameters(tower):
                    p.requires_grad_(False)
        if "text" in towers and text_layers is not None:
            self.set_text_trainable_layers(text_layers)
        return [p for p in self.module.parameters() if p.requires_grad]

    def prepare_text_cache(self, texts: Iterable[str]) -> int:
        """Precompute whatever per-caption work frozen layers allow for `texts` (the trainer
        passes, lazily, every caption it will draw); returns the number of cached captions.
        The default caches nothing and does not consume `texts`."""
        return 0

    def share_text_encodings(self, stores: dict, trained_top_layers: int) -> None:
        """Keep the per-caption outputs of the text layers below the top `trained_top_layers`
        in `stores`, shared with every model whose lower layers hold the same weights (a base
        and its fine-tunes that trained only the top layers), so a caption goes through them
        once. The default shares nothing."""

    def mark_weights_changed(self, tag: str) -> None:
        """The weights were changed in place (a training step): `tag` names the new state, so
        identity() -- and with it every cache key -- changes with them."""
        self.weights_tag = tag

    @abc.abstractmethod
    def save(self, path) -> str:
        """Write the weights in the family's native format; returns the model string to load them."""

    def run_details(self) -> dict:
        """What a result should record about how this model produced its outputs (e.g. how a
        negation-aware wrapper split its captions); asked after encoding. Default: nothing."""
        return {}

    def similarity(self, media_emb, text_emb):
        """(M, T) float64 scores of media embeddings against text embeddings (numpy arrays as
        encode_* returned them), or None for the standard score: the cosine of the L2-normalised
        embeddings, which the engine computes itself (the published rule). A scorer that is not a
        cosine (e.g. a negation-aware wrapper whose text embedding packs several parts) returns
        its matrix here; higher = better match, ties broken like torch.topk / argmax."""
        return None

    def text_lengths(self, texts: Sequence[str]) -> list[int]:
        """A length per caption that the engine sorts by before batching (characters here;
        adapters whose towers run at the batch's token length return token counts)."""
        return [len(t) for t in texts]

    def preprocess_id(self) -> str:
        """Part of the cache key describing preprocessing (override when configurable)."""
        return type(self).__name__


def parse_model_string(model: str) -> tuple[str, str]:
    """'openclip:ViT-B-32@openai' -> ('openclip', 'ViT-B-32@openai')."""
    backend, sep, rest = model.partition(":")
    if not sep or not rest:
        raise ConfigError(f"model string {model!r} must look like BACKEND:SPEC, e.g. "
                          f"'openclip:ViT-B-32@openai', 'hf:openai/clip-vit-base-patch32', "
                          f"'builtin:/path/dir'; backends: {MODEL_BACKENDS.names()}")
    return backend, rest


def pick_device(device: str | None = None) -> "torch.device":
    """Explicit device, else cuda > mps > cpu."""
    import torch

    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def precision_dtype(precision: str) -> "torch.dtype":
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} not in {list(PRECISIONS)}")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def backend_capabilities(model: str) -> frozenset:
    """What the models of a model string's backend can do, without loading one."""
    backend, _ = parse_model_string(model)
    MODEL_BACKENDS.get(backend)  # unknown backends: the same error as load_model
    return BACKEND_CAPABILITIES.get(backend, frozenset({EMBED}))


def model_identity(model: str, precision: str = "fp32") -> str | None:
    """The identity() the model string's adapter will have once loaded, without loading it
    (lets a fully cached evaluation skip loading weights); None when not known in advance."""
    backend, spec = parse_model_string(model)
    MODEL_BACKENDS.get(backend)  # unknown backends: the same error as load_model
    if backend not in MODEL_IDENTITIES.names():
        return None
    return MODEL_IDENTITIES.get(backend)(spec, precision=precision)


def load_model(model: str, device: str | None = None, precision: str = "fp32", **options):
    """Load any supported model by its model string: the one way to get a model (dual encoders,
    generative VLMs, wrappers). options: backend settings (an endpoint's concurrency, retries,
    timeout, deadline); a backend that takes none of them says so."""
    import inspect

    backend, spec = parse_model_string(model)
    loader = MODEL_BACKENDS.get(backend)
    if options:
        try:
            inspect.signature(loader).bind(spec, device=None, precision=precision, **options)
        except TypeError:
            raise ConfigError(f"model {model!r}: options {sorted(options)} do not apply to the "
                              f"{backend!r} backend") from None
    try:
        adapter = loader(spec, device=pick_device(device), precision=precision, **options)
    except NegbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - third-party loaders raise anything; say which model, in one line
        raise ConfigError(f"cannot load model {model!r}: {error_summary(err)}") from err
    try:  # results folders are named by the string the user typed
        adapter.model_string = model
    except AttributeError:
        pass
    return adapter


def error_summary(err: BaseException, width: int = 400) -> str:
    """A third-party exception as one line for a ConfigError: 'TypeName: message', the message's
    lines joined; a long one is shortened at sentence ends (whole sentences from the start, then '...'
    and the last sentence, which often says what to do), never inside a word."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    head = f"{type(err).__name__}: "
    if len(text) <= width:
        return head + text if text else type(err).__name__
    sentences = re.split(r"(?<=[.!?])\s+", text)
    for last in ([sentences[-1]] if len(sentences) > 1 else []) + [""]:  # with the last sentence if it fits
        kept = _leading_sentences(sentences[:-1] if last else sentences, width - len(last) - 5)
        if kept:
            return head + " ".join(kept) + (f" ... {last}" if last else " ...")
    return f"{head}{text[:width].rsplit(' ', 1)[0]} ..."  # one sentence longer than the width: whole words


def _leading_sentences(sentences: list[str], width: int) -> list[str]:
    kept: list[str] = []
    for sentence in sentences:
        if len(" ".join(kept + [sentence])) > width:
            break
        kept.append(sentence)
    return kept


# ---------------------------------------------------------------- precision for evaluation
# Evaluation at bf16/fp16 casts a model's weights once at load (`module.to(dtype)`, inputs in
# that dtype): on a CPU with AMX-BF16 that runs ViT-B-32 ~4x faster than fp32, where autocast,
# which casts the weights again at every op, gains ~1.1x (issue 29). Training keeps fp32 weights
# and autocast (train/trainer.py).

# CPU flags (Linux /proc/cpuinfo names) that give bf16 / fp16 matrix products a native path;
# without them oneDNN emulates bf16 and the cast model runs slower than fp32.
_FAST_CPU_FLAGS = {"bf16": ("amx_bf16", "avx512_bf16"), "fp16": ("amx_fp16", "avx512_fp16")}
_FLAG_NAMES = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16", "amx_fp16": "AMX-FP16",
               "avx512_fp16": "AVX512-FP16", "avx512f": "AVX512", "avx2": "AVX2"}


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags that matter for precision, as /proc/cpuinfo names them; off Linux,
    torch's own cpuinfo probes (private helpers, hence guarded). Empty when neither answers."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split()) & frozenset(_FLAG_NAMES)
    except OSError:
        pass
    import torch

    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported",
              "amx_fp16": "_is_amx_fp16_supported", "avx512f": "_is_avx512_supported", "avx2": "_is_avx2_supported"}
    found = set()
    for flag, probe in probes.items():
        try:
            if getattr(torch.cpu, probe)():
                found.add(flag)
        except (AttributeError, RuntimeError):
            continue
    return frozenset(found)


def _cpu_has(flags: frozenset[str]) -> str:
    named = [_FLAG_NAMES[f] for f in _FLAG_NAMES if f in flags]
    return ", ".join(named) if named else "none of AMX, AVX512, AVX2 found"


def fast_precisions(device) -> tuple[frozenset[str], str]:
    """The reduced precisions with a native fast path on `device`, and what the device has (words)."""
    import torch

    device = pick_device(str(device) if device is not None else None)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        fast = {"fp16"} | ({"bf16"} if major >= 8 else set())  # bf16 tensor cores from Ampere (8.0) on
        return frozenset(fast), f"CUDA {name}, compute capability {major}.{minor}"
    if device.type == "cpu":
        flags = cpu_flags()
        fast = {p for p, needed in _FAST_CPU_FLAGS.items() if flags & set(needed)}
        return frozenset(fast), f"CPU with {_cpu_has(flags)}"
    return frozenset(), f"{device.type} (no fast path known to negbench)"


def resolve_precision(requested: str, device) -> tuple[str, str | None]:
    """'fp32' | 'bf16' | 'fp16' | 'auto' on `device` -> (precision to run, one-line note or None).

    'auto' is bf16 where bf16 has a native fast path (a CUDA GPU with bf16; a CPU with
    AMX-BF16 or AVX512-BF16), else fp32; the note says which and why, for the results. An explicit
    bf16 / fp16 without a fast path is kept (the user asked for it) with a note that it will be
    slow and what the device has. fp32 has no note.
    """
    if requested not in PRECISIONS + ("auto",):
        raise ConfigError(f"precision {requested!r} not in {list(PRECISIONS + ('auto',))}")
    if requested == "fp32":
        return "fp32", None
    fast, has = fast_precisions(device)
    if requested == "auto":
        if "bf16" in fast:
            return "bf16", f"auto: bf16 ({has} has a fast bf16 path)"
        return "fp32", f"auto: fp32 ({has}: no fast bf16 path)"
    if requested in fast:
        return requested, None
    return requested, f"{requested} will be slow here: {has} has no native {requested} path (fp32 may be faster)"
