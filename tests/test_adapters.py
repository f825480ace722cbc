"""Model adapters: open_clip checkpoints of every published shape, transformers folders."""
from __future__ import annotations

import pytest
import torch

from negbench.core.errors import ConfigError
from negbench.inputs.media import load_image
from negbench.models.base import load_model

CAPTIONS = ["This image features dog and cat.", "This image does not feature tree."]


def _embed(adapter, image_path):
    with torch.inference_mode():
        img = adapter.encode_images(adapter.preprocess(load_image(image_path)).unsqueeze(0))
        txt = adapter.encode_texts(CAPTIONS)
    return img, txt


def test_openclip_negclip_style_checkpoint(tiny_openclip_model, image_dir):
    a = load_model(tiny_openclip_model, device="cpu")
    img, txt = _embed(a, image_dir / "img0.png")
    assert img.shape == (1, 32) and txt.shape == (2, 32)
    assert a.model_string == tiny_openclip_model and "file:" in a.identity()
    assert float(a.logit_scale().detach()) > 1
    image_p = {id(p) for p in a.tower_parameters("image")}
    text_p = {id(p) for p in a.tower_parameters("text")}
    assert image_p and text_p and not image_p & text_p
    assert len(image_p) + len(text_p) == len(list(a.module.parameters())) - 1  # minus logit_scale


def test_openclip_bare_and_safetensors_state_dicts_load_identically(tiny_openclip_arch, tiny_openclip_model,
                                                                     tmp_path, image_dir):
    ref = load_model(tiny_openclip_model, device="cpu")
    bare = tmp_path / "bare.pth"
    torch.save(ref.module.state_dict(), bare)
    st_model = ref.save(tmp_path / "weights.safetensors")
    dir_model = ref.save(tmp_path / "ckptdir")
    want = _embed(ref, image_dir / "img1.png")
    for model in (f"openclip:{tiny_openclip_arch}@{bare}", st_model, dir_model):
        got = _embed(load_model(model, device="cpu"), image_dir / "img1.png")
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])
    assert dir_model.endswith("open_clip_pytorch_model.bin")


def test_openclip_refuses_pickled_code(tiny_openclip_arch, tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": ConfigError("boom")}, evil)
    with pytest.raises(ConfigError, match="refused: the checkpoint holds pickled Python objects") as info:
        load_model(f"openclip:{tiny_openclip_arch}@{evil}", device="cpu")
    msg = str(info.value)
    assert "negbench.core.errors.ConfigError" in msg and "weights_only=False" not in msg and str(evil) in msg


def test_truncated_checkpoints_are_config_errors(tiny_openclip_arch, tiny_openclip_checkpoint, tmp_path):
    from negbench.models.openclip import load_state_dict_file
    from negbench.models.safetensors_io import save_safetensors

    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny_openclip_checkpoint.read_bytes()[:4000])
    st = tmp_path / "w.safetensors"
    save_safetensors({"x": torch.zeros(64)}, st)
    (tmp_path / "cut.safetensors").write_bytes(st.read_bytes()[:-40])
    for path, fragment in ((cut, "unreadable checkpoint"), (tmp_path / "cut.safetensors", "unreadable safetensors")):
        with pytest.raises(ConfigError, match=fragment):
            load_state_dict_file(path)


def test_safetensors_bytes_are_deterministic(tmp_path):
    from negbench.models.safetensors_io import save_safetensors

    meta = {f"k{i}": str(i) for i in range(12)}
    state = {"a": torch.arange(6.0), "b": torch.ones(2, 3)}
    blobs = set()
    for i in range(6):
        save_safetensors(state, tmp_path / f"{i}.safetensors", metadata=meta)
        blobs.add((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(blobs) == 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "0.safetensors"), "pt") as f:
        assert f.metadata() == meta and torch.equal(f.get_tensor("b"), torch.ones(2, 3))


def test_openclip_errors(tiny_openclip_arch, tmp_path):
    with pytest.raises(ConfigError, match="checkpoint not found"):
        load_model(f"openclip:{tiny_openclip_arch}@{tmp_path}/missing.pt", device="cpu")
    with pytest.raises(ConfigError, match="unknown open_clip architecture 'ViT-B-33'.*ViT-B-32"):
        load_model("openclip:ViT-B-33@openai", device="cpu")
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {"visual.proj": torch.zeros(3, 3)}}, wrong)
    with pytest.raises(ConfigError, match="do not fit"):
        load_model(f"openclip:{tiny_openclip_arch}@{wrong}", device="cpu")


def test_openclip_quickgelu_warning(tiny_openclip_arch, tiny_openclip_checkpoint, monkeypatch):
    import open_clip

    monkeypatch.setattr(open_clip, "list_pretrained_tags_by_model", lambda arch: ["openai"])
    with pytest.warns(UserWarning, match="QuickGELU"):
        load_model(f"openclip:{tiny_openclip_arch}@{tiny_openclip_checkpoint}", device="cpu")


def test_openclip_without_tag_lists_the_tags():
    with pytest.raises(ConfigError, match=r"names no weights.*Pretrained tags for ViT-B-32: .*openai"):
        load_model("openclip:ViT-B-32", device="cpu")


def test_openclip_random_weights_are_seeded(tiny_openclip_arch, image_dir):
    a = load_model(f"openclip:{tiny_openclip_arch}@random", device="cpu")
    b = load_model(f"openclip:{tiny_openclip_arch}@random", device="cpu")
    torch.testing.assert_close(_embed(a, image_dir / "img2.png")[1], _embed(b, image_dir / "img2.png")[1])


def test_hf_folder_loads_encodes_and_saves_back(tiny_hf_dir, tmp_path, image_dir):
    a = load_model(f"hf:{tiny_hf_dir}", device="cpu")
    img, txt = _embed(a, image_dir / "img3.png")
    assert img.shape == (1, 16) and txt.shape == (2, 16)
    assert a.preprocess(load_image(image_dir / "img3.png")).shape == (3, 32, 32)
    assert a.identity().startswith("hf|dir:")
    again = load_model(a.save(tmp_path / "saved"), device="cpu")
    img2, txt2 = _embed(again, image_dir / "img3.png")
    torch.testing.assert_close(img, img2)
    torch.testing.assert_close(txt, txt2)
    image_p = {id(p) for p in a.tower_parameters("image")}
    text_p = {id(p) for p in a.tower_parameters("text")}
    assert image_p and text_p and not image_p & text_p


def test_hf_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="not found|cannot load"):
        load_model(f"hf:{tmp_path}/nothing", device="cpu")


def test_video_frames_sampled_uniformly(video_dir):
    from negbench.inputs.media import MediaError, sample_video_frames

    frames = sample_video_frames(video_dir / "video0.mp4", 4)
    assert len(frames) == 4 and frames[0].size == (32, 32)
    # background brightness grows with the frame index: sampled frames are in order and distinct
    levels = [frames[i].getpixel((0, 31))[0] for i in range(4)]
    assert levels == sorted(levels) and len(set(levels)) == 4
    assert len(sample_video_frames(video_dir / "video0.mp4", 12)) == 12   # short video: repeats
    bad = video_dir / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="broken.mp4"):
        sample_video_frames(bad, 4)
