"""A tiny random LLaVA-style VLM saved like a real checkpoint, and a real OpenAI-compatible
chat server on 127.0.0.1 that runs it (used by tests/test_vlm.py and bench/vlm_speed.py)."""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# jinja: the user turn (images as <image> placeholders, then text), then the assistant prefix
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")
WORDS = ("a an the this image video features does not feature but and no dog cat car tree apple bird "
         "which caption describes best answer with letter of correct option only write one sentence for "
         "A B C D ( ) . : , Answer").split()


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([" ".join(WORDS)] * 4 + ["A. B. C. D. (a) (b) Answer: B."], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})


def _answer_letter_then_stop(model, tok, letter: str) -> None:
    """Edit the random weights so greedy decoding answers `letter` and then ends: every input
    embedding carries a constant on dim 0 (read out as `letter`), the letter's own embedding a
    large dim 1 (read out as end-of-sequence), and the residual stream keeps both dominant."""
    import torch

    letter_id, eos = tok.convert_tokens_to_ids(letter), tok.eos_token_id
    with torch.no_grad():
        emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        emb[:, 0] = 10.0
        emb[letter_id, 1] = 30.0
        head.zero_()
        head[letter_id, 0] = 5.0
        head[eos, 1] = 10.0


def build_tiny_vlm(out: Path, seed: int = 0, answer_letter: str | None = None) -> Path:
    """LLaVA: 2-layer width-32 CLIP vision tower (32 px, 8 px patches), 2-layer width-32 Llama.
    answer_letter: edit the weights so that it always answers that letter (parsing tests)."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tok = _tokenizer()
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       tie_word_embeddings=False)
    config = LlavaConfig(vision_config=vision, text_config=text, vision_feature_layer=-1,
                         image_token_index=tok.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    if answer_letter:
        _answer_letter_then_stop(model, tok, answer_letter)
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                  crop_size={"height": 32, "width": 32}),
                               tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                               chat_template=CHAT_TEMPLATE, image_token="<image>", num_additional_image_tokens=1)
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# ---------------------------------------------------------------- the architecture matrix
# Tiny random checkpoints of the popular transformers VLM architectures, each with its own
# processor class, its special tokens and a chat template of its real shape (BOS written by the
# template for Idefics3 / SmolVLM / Gemma 3 / Mllama, as theirs do; PaliGemma has none).

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
              image_size=32, patch_size=8)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False)


def chat_template(begin: str, user: str, image: str, end: str, assistant: str) -> str:
    """Jinja of the common VLM shape: BEGIN (user|assistant turn: OPEN content END)* ASSISTANT-OPEN,
    image parts written as IMAGE; `user`/`assistant` contain the role's opening text."""
    return ("{{ '%s' }}{%% for m in messages %%}{%% if m['role'] == 'user' %%}{{ '%s' }}{%% else %%}"
            "{{ '%s' }}{%% endif %%}{%% if m['content'] is string %%}{{ m['content'] }}{%% else %%}"
            "{%% for c in m['content'] %%}{%% if c['type'] == 'image' %%}{{ '%s' }}{%% else %%}{{ c['text'] }}"
            "{%% endif %%}{%% endfor %%}{%% endif %%}{{ '%s' }}{%% endfor %%}"
            "{%% if add_generation_prompt %%}{{ '%s' }}{%% endif %%}") % (begin, user, assistant, image, end, assistant)


def _bpe(special: list[str], bos: str, eos: str, pad: str, unk: str = "<unk>", **extra):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys([unk, bos, eos, pad, *special]))
    trainer = trainers.BpeTrainer(vocab_size=300 + len(specials), special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([" ".join(WORDS)] * 4 + ["A. B. C. D. (a) (b) Answer: B."], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=unk, bos_token=bos, eos_token=eos,
                                   pad_token=pad, **extra)


def _ids(tok, **names) -> dict:
    return {k: tok.convert_tokens_to_ids(v) for k, v in names.items()}


def _llava_next():
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextImageProcessor,
                              LlavaNextProcessor)

    tok = _bpe(["<image>", "[INST]", "[/INST]"], "<s>", "</s>", "<pad>", extra_special_tokens={"image_token": "<image>"})
    pinpoints = [[32, 32], [32, 64], [64, 32]]
    proc = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                image_grid_pinpoints=pinpoints),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", image_token="<image>",
        num_additional_image_tokens=1, chat_template=chat_template("", "[INST] ", "<image>\n", " ", "[/INST]"))
    config = LlavaNextConfig(vision_config=CLIPVisionConfig(**VISION, projection_dim=32),
                             text_config=LlamaConfig(vocab_size=len(tok), **TEXT), image_grid_pinpoints=pinpoints,
                             vision_feature_layer=-1, image_token_index=tok.convert_tokens_to_ids("<image>"))
    return config, proc, tok


def _qwen2_vl(v25: bool):
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    specials = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = _bpe(specials, "<|endoftext|>", "<|im_end|>", "<|endoftext|>",
               extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                                     "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"})
    template = chat_template("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", "<|im_start|>user\n",
                             "<|vision_start|><|image_pad|><|vision_end|>", "<|im_end|>\n", "<|im_start|>assistant\n")
    pixels = dict(min_pixels=8 * 8, max_pixels=32 * 32, patch_size=4, merge_size=2, temporal_patch_size=2)
    image_proc, video_proc = Qwen2VLImageProcessor(**pixels), Qwen2VLVideoProcessor(**pixels)
    ids = _ids(tok, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
               vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>")
    text = dict(TEXT, vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id, rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                                            "rope_theta": 10000.0})
    vision = dict(depth=1, num_heads=2, patch_size=4, spatial_merge_size=2, temporal_patch_size=2)
    if v25:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor

        config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(vision, hidden_size=32, intermediate_size=64,
                                  out_hidden_size=32, window_size=16, fullatt_block_indexes=[0]), **ids)
        proc = Qwen2_5_VLProcessor(image_processor=image_proc, video_processor=video_proc, tokenizer=tok,
                                   chat_template=template)
    else:
        from transformers import Qwen2VLConfig, Qwen2VLProcessor

        config = Qwen2VLConfig(text_config=text, vision_config=dict(vision, embed_dim=32, hidden_size=32, mlp_ratio=2),
                               **ids)
        proc = Qwen2VLProcessor(image_processor=image_proc, video_processor=video_proc, tokenizer=tok,
                                chat_template=template)
    return config, proc, tok


def _idefics3(smol: bool):
    grid = [f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5)]
    specials = ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", "<|begin_of_text|>", *grid]
    tok = _bpe(specials, "<|begin_of_text|>", "<end_of_utterance>", "<pad>",
               extra_special_tokens={"image_token": "<image>", "end_of_utterance_token": "<end_of_utterance>",
                                     "fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>"})
    template = chat_template("<|begin_of_text|>", "User:", "<image>", "<end_of_utterance>\n", "Assistant:")
    image = dict(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    text = dict(TEXT, vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    vision = dict(VISION)
    if smol:
        from transformers import SmolVLMConfig, SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

        proc = SmolVLMProcessor(image_processor=SmolVLMImageProcessor(**image), tokenizer=tok,
                                video_processor=SmolVLMVideoProcessor(**image), image_seq_len=4, chat_template=template)
        config = SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=2,
                               image_token_id=tok.convert_tokens_to_ids("<image>"))
    else:
        from transformers import Idefics3Config, Idefics3ImageProcessor, Idefics3Processor

        proc = Idefics3Processor(image_processor=Idefics3ImageProcessor(**image), tokenizer=tok, image_seq_len=4,
                                 chat_template=template)
        config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2,
                                image_token_id=tok.convert_tokens_to_ids("<image>"))
    return config, proc, tok


def _paligemma():
    from transformers import PaliGemmaConfig, PaliGemmaProcessor, SiglipImageProcessor

    tok = _bpe(["<image>"], "<bos>", "<eos>", "<pad>", extra_special_tokens={"image_token": "<image>"})
    image_proc = SiglipImageProcessor(size={"height": 32, "width": 32})
    image_proc.image_seq_length = 16  # (32 / 8) ** 2 patches
    proc = PaliGemmaProcessor(image_processor=image_proc, tokenizer=tok)  # no chat template, as the real ones
    text = dict(TEXT, vocab_size=len(tok), head_dim=16, pad_token_id=tok.pad_token_id)
    config = PaliGemmaConfig(vision_config=dict(VISION, projection_dim=32, model_type="siglip_vision_model"),
                             text_config=dict(text, model_type="gemma"), projection_dim=32, hidden_size=32,
                             image_token_index=tok.convert_tokens_to_ids("<image>"), vocab_size=len(tok),
                             tie_word_embeddings=False)
    return config, proc, tok


def _gemma3():
    from transformers import Gemma3Config, Gemma3ImageProcessor, Gemma3Processor

    specials = ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>", "<end_of_turn>"]
    tok = _bpe(specials, "<bos>", "<eos>", "<pad>",
               extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                     "image_token": "<image_soft_token>"})
    proc = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                           image_seq_length=4, chat_template=chat_template(
                               "<bos>", "<start_of_turn>user\n", "<start_of_image>", "<end_of_turn>\n",
                               "<start_of_turn>model\n"))
    text = dict(TEXT, vocab_size=len(tok), head_dim=16, query_pre_attn_scalar=16, sliding_window=64,
                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    ids = _ids(tok, boi_token_index="<start_of_image>", eoi_token_index="<end_of_image>",
               image_token_index="<image_soft_token>")
    config = Gemma3Config(text_config=text, vision_config=dict(VISION, model_type="siglip_vision_model"),
                          mm_tokens_per_image=4, tie_word_embeddings=False, **ids)
    return config, proc, tok


def _mllama():
    from transformers import MllamaConfig, MllamaImageProcessor, MllamaProcessor

    specials = ["<|image|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>"]
    tok = _bpe(specials, "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
               extra_special_tokens={"image_token": "<|image|>"})
    proc = MllamaProcessor(image_processor=MllamaImageProcessor(size={"height": 32, "width": 32}, max_image_tiles=2),
                           tokenizer=tok, chat_template=chat_template(
                               "<|begin_of_text|>", "<|start_header_id|>user<|end_header_id|>\n\n", "<|image|>",
                               "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"))
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
                  image_size=32, patch_size=8, max_num_tiles=2, intermediate_layers_indices=[0],
                  vision_output_dim=64, supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]])
    text = dict(vocab_size=len(tok) + 8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=2, cross_attention_layers=[1], tie_word_embeddings=False,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = MllamaConfig(vision_config=vision, text_config=text,
                          image_token_index=tok.convert_tokens_to_ids("<|image|>"))
    return config, proc, tok


ARCHITECTURES = {
    "llava-next": (_llava_next, "LlavaNextForConditionalGeneration"),
    "qwen2-vl": (lambda: _qwen2_vl(False), "Qwen2VLForConditionalGeneration"),
    "qwen2.5-vl": (lambda: _qwen2_vl(True), "Qwen2_5_VLForConditionalGeneration"),
    "idefics3": (lambda: _idefics3(False), "Idefics3ForConditionalGeneration"),
    "smolvlm": (lambda: _idefics3(True), "SmolVLMForConditionalGeneration"),
    "paligemma": (_paligemma, "PaliGemmaForConditionalGeneration"),
    "gemma3": (_gemma3, "Gemma3ForConditionalGeneration"),
    "mllama": (_mllama, "MllamaForConditionalGeneration"),
}


def build_tiny_arch(arch: str, out: Path, seed: int = 0, answer_letter: str | None = None) -> Path:
    """A tiny random checkpoint of `arch` ('llava' or a key of ARCHITECTURES) saved in `out`
    like a real one (weights, config, processor, tokenizer, chat template)."""
    import torch
    import transformers

    if arch == "llava":
        return build_tiny_vlm(out, seed=seed, answer_letter=answer_letter)
    make, class_name = ARCHITECTURES[arch]
    config, processor, tok = make()
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(config).eval()
    for key, value in (("eos_token_id", tok.eos_token_id), ("pad_token_id", tok.pad_token_id),
                       ("bos_token_id", tok.bos_token_id)):
        setattr(model.generation_config, key, value)
    if answer_letter:
        _answer_letter_then_stop(model, tok, answer_letter)
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# ---------------------------------------------------------------- the local chat server

def _decode_image(url: str):
    from PIL import Image

    head, _, data = url.partition(",")
    if not head.startswith("data:image/"):
        raise ValueError(f"not a data URL: {head[:40]}")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def _hf_messages(messages):
    """OpenAI chat messages -> (transformers chat messages, their images in order)."""
    out, images = [], []
    for m in messages:
        if isinstance(m["content"], str):
            out.append({"role": m["role"], "content": m["content"]})
            continue
        parts = []
        for part in m["content"]:
            if part["type"] == "image_url":
                images.append(_decode_image(part["image_url"]["url"]))
                parts.append({"type": "image", "image": images[-1]})
            else:
                parts.append({"type": "text", "text": part["text"]})
        out.append({"role": m["role"], "content": parts})
    return out, images


def prompt_logprobs(adapter, messages, continue_final: bool):
    """vLLM-style prompt_logprobs of the templated chat: [None, {token_id: {logprob, rank, decoded_token}}...]."""
    import torch

    hf_messages, _ = _hf_messages(messages)  # tokenized by the processor itself, as vLLM does (one BOS)
    batch = adapter.processor.apply_chat_template(hf_messages, tokenize=True, return_dict=True, return_tensors="pt",
                                                  add_generation_prompt=not continue_final,
                                                  continue_final_message=continue_final)
    with torch.inference_mode():
        logp = torch.log_softmax(adapter.model(**batch).logits[0].float(), dim=-1)
    ids = batch["input_ids"][0].tolist()
    return [None] + [{str(t): {"logprob": float(logp[i - 1, t]), "rank": 1,
                               "decoded_token": adapter.tokenizer.decode([t])}} for i, t in enumerate(ids) if i]


def _query_of(messages):
    """OpenAI chat messages -> negbench Query (images from image_url parts, text parts joined)."""
    from negbench.models.vlm.base import Query

    images, texts = [], []
    user = [m for m in messages if m["role"] == "user"][-1]
    for part in user["content"]:
        if part["type"] == "image_url":
            images.append(_decode_image(part["image_url"]["url"]))
        elif part["type"] == "text":
            texts.append(part["text"])
    return Query(tuple(images), "".join(texts))


def _is_odd_question(req: dict) -> bool:
    """Half of the questions, chosen by their content (stable across retries and concurrency)."""
    import hashlib

    return hashlib.sha256(json.dumps(req["messages"], sort_keys=True).encode()).digest()[0] % 2 == 1


class _Handler(BaseHTTPRequestHandler):
    """POST /v1/chat/completions runs the tiny model. Model names steer failure modes:
    'malformed' -> invalid JSON, 'noanswer' -> JSON without choices, 'slow' -> sleeps past
    the client's timeout, 'refuse' -> HTTP 400, 'error500' -> HTTP 500, 'half' -> HTTP 400 for about
    half of the questions, 'redirect' -> 307 to another path. Only 'tiny'
    answers vLLM's prompt_logprobs requests; any other name acts as an endpoint without them."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, code: int, body: bytes, headers: dict | None = None):
        try:
            self.send_response(code)
            for k, v in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left: its business
            pass

    def do_POST(self):
        server = self.server
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "model": req.get("model")})
        mode = req.get("model")
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": "not found"}')
        if mode == "redirect":
            return self._send(307, b"", {"Location": "/v1/elsewhere"})
        if mode == "refuse":
            return self._send(400, b'{"error": {"message": "refused"}}')
        if mode == "error500":
            return self._send(500, b'{"error": {"message": "internal"}}')
        if mode == "half" and _is_odd_question(req):  # every other question fails: a partial run
            return self._send(400, b'{"error": {"message": "refused"}}')
        if mode == "malformed":
            return self._send(200, b"{not json")
        if mode == "noanswer":
            return self._send(200, b'{"choices": []}')
        if mode == "slow":
            time.sleep(server.slow_s)
        if "prompt_logprobs" in req and mode == "tiny":  # vLLM's extension: score the prompt itself
            with server.lock:
                scored = prompt_logprobs(server.adapter, req["messages"], bool(req.get("continue_final_message")))
            body = {"id": "tiny", "object": "chat.completion", "model": mode, "prompt_logprobs": scored,
                    "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": ""}}]}
            return self._send(200, json.dumps(body).encode())
        with server.lock:  # one forward pass at a time: the model is shared by the handler threads
            answer = server.adapter.choose([_query_of(req["messages"])],
                                           max_new_tokens=int(req.get("max_tokens", 16)))[0]
        body = {"id": "tiny", "object": "chat.completion", "model": mode,
                "choices": [{"index": 0, "finish_reason": "length",
                             "message": {"role": "assistant", "content": answer.text}}]}
        self._send(200, json.dumps(body).encode())


def start_server(model_dir: Path, slow_s: float = 3.0) -> ThreadingHTTPServer:
    """Serve the tiny model on 127.0.0.1:<free port>/v1 from a thread; call .shutdown() and
    .server_close() after (which waits for requests still in flight)."""
    from negbench.models.vlm.hf import HFVisionLanguageModel

    import torch

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = False  # server_close() waits for handlers still running the model
    server.adapter = HFVisionLanguageModel(str(model_dir), torch.device("cpu"))
    server.adapter.model_string = f"vlm:hf:{model_dir}"
    server.lock, server.seen, server.slow_s = threading.Lock(), [], slow_s
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def server_url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"
