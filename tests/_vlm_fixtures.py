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
                parts.append({"type": "image"})
            else:
                parts.append({"type": "text", "text": part["text"]})
        out.append({"role": m["role"], "content": parts})
    return out, images


def prompt_logprobs(adapter, messages, continue_final: bool):
    """vLLM-style prompt_logprobs of the templated chat: [None, {token_id: {logprob, rank, decoded_token}}...]."""
    import torch

    hf_messages, images = _hf_messages(messages)
    text = adapter.processor.apply_chat_template(hf_messages, tokenize=False, add_generation_prompt=not continue_final,
                                                 continue_final_message=continue_final)
    batch = adapter.processor(images=[images], text=[text], return_tensors="pt")
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


class _Handler(BaseHTTPRequestHandler):
    """POST /v1/chat/completions runs the tiny model. Model names steer failure modes:
    'malformed' -> invalid JSON, 'noanswer' -> JSON without choices, 'slow' -> sleeps past
    the client's timeout, 'refuse' -> HTTP 400, 'redirect' -> 307 to another path. Only 'tiny'
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
