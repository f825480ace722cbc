"""`vlm:openai:` against an OpenAI-compatible server nobody here wrote: transformers' own
`transformers serve` (fastapi + uvicorn, the dev extra), started on 127.0.0.1 as a real process,
serving tiny checkpoints from local folders (HF_HUB_OFFLINE=1).

Choice answers over HTTP equal `vlm:hf:` on the same folder (LLaVA, Qwen2-VL, and Gemma 3,
whose template writes BOS itself: the server tokenizes it once, as the adapter must). The
likelihood protocol needs vLLM's `prompt_logprobs`; `transformers serve` refuses the field (422),
which the adapter finds on the first request and reports as ProtocolUnsupported."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from PIL import Image

from _vlm_fixtures import build_tiny_arch
from negbench.models.vlm.base import ProtocolUnsupported, Query, load
from negbench.models.vlm.hf import HFVisionLanguageModel

ARCHS = ["llava", "qwen2-vl", "gemma3"]
START_TIMEOUT_S = 180


def _serve_available() -> bool:
    from transformers.utils.import_utils import is_serve_available

    return is_serve_available()


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not _serve_available(),
                                 reason="`transformers serve` needs fastapi, uvicorn, pydantic and openai "
                                        "(pip install -e '.[dev]')")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {arch: build_tiny_arch(arch, tmp_path_factory.mktemp(f"serve-{arch}")) for arch in ARCHS}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`transformers serve` on a free loopback port; models are loaded by folder on first request."""
    port, log_path = _free_port(), tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", "from transformers.cli.transformers import main; main()",
                                 "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/models", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not answer in {START_TIMEOUT_S} s: "
                                f"{log_path.read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _queries() -> list[Query]:
    red, green = Image.new("RGB", (40, 30), (200, 30, 30)), Image.new("RGB", (30, 44), (20, 140, 60))
    four = "Which caption describes this image best?\nA. This image features dog and cat.\n" \
           "B. This image does not feature car.\nC. This image features cat, but not car.\n" \
           "D. This image features car.\nAnswer with the letter of the correct option only."
    two = "Which caption describes this video best?\nA. This video features dog.\nB. This video features cat.\n" \
          "Answer with the letter of the correct option only."
    return [Query((red,), four), Query((green,), four), Query((red, green, red), two)]


@pytest.mark.parametrize("arch", ARCHS)
def test_choice_over_transformers_serve_equals_vlm_hf(arch, folders, server):
    local = HFVisionLanguageModel(str(folders[arch]), torch.device("cpu"))
    local.model_string = f"vlm:hf:{folders[arch]}"
    remote = load(f"openai:{folders[arch]}@{server}", timeout=120.0, retries=0)
    queries = _queries()
    expected = [a.text for a in local.choose(queries, max_new_tokens=4, batch_size=1)]
    got = remote.choose(queries, max_new_tokens=4)
    assert [a.error for a in got] == [None] * len(queries)
    assert [a.text for a in got] == expected


def test_likelihood_against_an_endpoint_without_prompt_logprobs_stops_at_once(folders, server):
    remote = load(f"openai:{folders['llava']}@{server}", timeout=120.0, retries=0)
    query = _queries()[0]
    with pytest.raises(ProtocolUnsupported, match=r"does not give prompt log-probabilities \(answered http_422.*"
                                                  r"vLLM's `prompt_logprobs`") as info:
        remote.option_logprobs(query.images, "Which caption is right?", ["This image features car.", "B"])
    assert "\n" not in str(info.value)
