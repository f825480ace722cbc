"""The contract of a generative VLM adapter, and the `vlm:` model-string loader.

A generative adapter answers questions instead of embedding them:
- `choose(queries)`: free-text answers to image(s)+prompt queries (the `choice` protocol);
- `option_logprobs(images, prompt, options)`: log p(option text | image(s), prompt) per option
  (the `likelihood` protocol), for backends that can score a given continuation;
- `identity()`: a string that changes whenever the weights or processing change (cache key).
"""
from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from negbench.core.errors import ConfigError
from negbench.core.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# vlm backend -> "module:loader"; loader(spec, device, precision, **options) -> GenerativeAdapter
VLM_BACKENDS: Registry = Registry("vlm backend")
VLM_BACKENDS.register("hf", "negbench.models.vlm.hf:load")
VLM_BACKENDS.register("openai", "negbench.models.vlm.openai:load")
# vlm backend -> "module:identity"; identity(spec, precision) -> str | None: the loaded adapter's
# identity() computed from the string and file fingerprints, loading nothing (models/base.py's
# MODEL_IDENTITIES, which lets a fully cached run skip loading)
VLM_IDENTITIES: Registry = Registry("vlm backend")
VLM_IDENTITIES.register("hf", "negbench.models.vlm.hf:identity")
VLM_IDENTITIES.register("openai", "negbench.models.vlm.openai:identity")
# 'vlm:hf:DIR#likelihood', 'vlm:...#choice+shuffle3': the scoring protocol named in the model string,
# as results record it (negbench.evaluation.generative)
_QUALIFIER = re.compile(r"#(?P<protocol>choice|likelihood)(?:\+shuffle(?P<seed>\d+))?$")


class ProtocolUnsupported(ConfigError):
    """The backend cannot do the scoring protocol asked (e.g. an endpoint without vLLM's
    `prompt_logprobs` asked for likelihoods): found on the first request, before anything is scored."""


@dataclass(frozen=True)
class Query:
    """One question to a generative model: its images (a video's frames) and the user prompt."""
    images: tuple          # PIL images, in order
    prompt: str


def chat_messages(images: Sequence, prompt: str) -> list[dict]:
    """The one user turn every backend sends: the image(s) in order, then the prompt, in the
    message shape of transformers' chat templates / the OpenAI API. `images` are whatever
    stands for each image (PIL images for a processor, file paths in the per-item log)."""
    return [{"role": "user", "content": [*({"type": "image", "image": im} for im in images),
                                         {"type": "text", "text": prompt}]}]


@dataclass(frozen=True)
class Answer:
    """A model's reply: the text, or why there is none (timeout, http_503, malformed, ...)."""
    text: str | None
    error: str | None = None


class GenerativeAdapter(abc.ABC):
    """What negbench.evaluation.generative needs from a generative VLM."""

    model_string: str
    generative = True            # (legacy flag; the engine asks `capabilities`)
    supports_likelihood = False  # can score a given continuation (option_logprobs)
    # how option_logprobs scores, for the results: 'cached-prefix' | 'full-forward' (vlm:hf:, decided
    # on the first question) | 'prompt-logprobs' (an endpoint's); None until the first question
    likelihood_mode: str | None = None
    precision = "fp32"

    @property
    def capabilities(self) -> frozenset:
        """What the evaluation engine may ask (negbench.models.base: CHOOSE, SCORE_OPTIONS)."""
        from negbench.models.base import CHOOSE, SCORE_OPTIONS

        return frozenset({CHOOSE, SCORE_OPTIONS} if self.supports_likelihood else {CHOOSE})

    @abc.abstractmethod
    def identity(self) -> str:
        """Changes whenever the weights, processor or endpoint model change (cache key)."""

    @abc.abstractmethod
    def choose(self, queries: Sequence[Query], *, max_new_tokens: int = 16, batch_size: int = 8,
               progress: bool = False) -> list[Answer]:
        """Greedy answers, one per query, in order. Failures come back as Answer(None, error)."""

    def sent_messages(self, query: Query, image_names: Sequence[str]) -> list[dict]:
        """The chat messages sent for `query`, JSON-able (for the per-item log, as lm-eval's
        --log_samples): each image replaced by its name (file path), in the order shown."""
        if len(image_names) != len(query.images):
            raise ConfigError(f"{len(image_names)} image names for a question with {len(query.images)} images")
        return chat_messages([str(n) for n in image_names], query.prompt)

    def option_logprobs(self, images: Sequence["Image.Image"], prompt: str,
                        options: Sequence[str]) -> "np.ndarray":
        """(n_options, 2) float64: summed log-probability of each option's tokens given the
        image(s) and prompt, and the number of option tokens."""
        raise ConfigError(f"{self.model_string}: this backend cannot score given answers "
                          f"(likelihood protocol); use --protocol choice")

    def answer_details(self) -> dict:
        """How this backend answered, for the results' protocol_details (e.g. which likelihood
        pass a transformers model used). Called after the questions were asked."""
        return {"likelihood_mode": self.likelihood_mode} if self.likelihood_mode else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'model_string', '?')!r})"


def split_vlm_spec(spec: str) -> tuple[str, str]:
    """'hf:/dir' -> ('hf', '/dir'); 'openai:MODEL@URL' -> ('openai', 'MODEL@URL')."""
    backend, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ConfigError(f"vlm model string 'vlm:{spec}' must look like vlm:hf:ID_OR_DIR or "
                          f"vlm:openai:MODEL@URL; vlm backends: {VLM_BACKENDS.names()}")
    return backend, rest


def split_qualifier(model_string: str) -> tuple[str, str | None, int | None]:
    """'vlm:hf:D#choice+shuffle3' -> ('vlm:hf:D', 'choice', 3); no qualifier -> (s, None, None)."""
    m = _QUALIFIER.search(model_string)
    if not m:
        return model_string, None, None
    seed = m.group("seed")
    return model_string[:m.start()], m.group("protocol"), (int(seed) if seed is not None else None)


def identity(spec: str, precision: str = "fp32") -> str | None:
    """Identity of the `vlm` model backend (MODEL_IDENTITIES): what load(spec).identity() will be,
    without loading; the '#protocol' qualifier is ignored, as load ignores it. None where only
    loading can tell (the loader then also reports a bad string)."""
    bare = split_qualifier(spec)[0]
    backend, sep, rest = bare.partition(":")
    if not sep or not rest or backend not in VLM_IDENTITIES:
        return None
    return VLM_IDENTITIES.get(backend)(rest, precision=precision)


def load(spec: str, device=None, precision: str = "fp32", **options) -> GenerativeAdapter:
    """Loader of the `vlm` model backend: spec is what follows 'vlm:' (a '#protocol' suffix is
    kept in model_string for the evaluation and ignored for loading)."""
    bare = split_qualifier(spec)[0]
    backend, rest = split_vlm_spec(bare)
    adapter = VLM_BACKENDS.get(backend)(rest, device=device, precision=precision, **options)
    adapter.model_string = f"vlm:{spec}"
    return adapter
