"""What `negbench eval` and `negbench.evaluate` tell a user: one-line errors (exit 2, no traceback),
honest --limit marks, one line per reused result, the report's small-n / gallery flags and chance."""
from __future__ import annotations

import json

import pytest

from negbench.cli import main
from negbench.core.errors import ConfigError
from negbench.evaluation.store import model_slug


def _one_line_error(argv, capsys) -> str:
    """Run the CLI, expect exit 2 and exactly one stderr line without a traceback; return it."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _eval(sample_tasks, model, out, *extra):
    return ["eval", "--model", model, "--tasks-file", str(sample_tasks), "--out", str(out), "--no-progress",
            "--bootstrap-samples", "20", *extra]


# ---------------------------------------------------------------- 1. --device up front

def test_missing_device_is_one_line_before_anything_runs(sample_tasks, tiny_openclip_model, tmp_path, capsys):
    line = _one_line_error(_eval(sample_tasks, tiny_openclip_model, tmp_path / "r", "--tasks", "sample_mcq",
                                 "--device", "cuda:99"), capsys)
    assert "--device 'cuda:99': not on this machine; devices here: cpu" in line
    assert not (tmp_path / "r").exists()  # checked before any task was read or result written


def test_api_checks_the_device_the_same_way(sample_tasks, tiny_openclip_model):
    import negbench

    with pytest.raises(ConfigError, match="--device 'cuda:99': not on this machine"):
        negbench.evaluate(tiny_openclip_model, "sample_mcq", data_root=sample_tasks.parent, device="cuda:99")


# ---------------------------------------------------------------- 2. third-party failures, uncut

OPEN_CLIP_OFFLINE = ("Failed to download weights for tag 'openai': Failed to download file (open_clip_pytorch_model.bin) "
                     "for timm/vit_base_patch32_clip_224.openai. Last error: An error happened while trying to locate "
                     "the file on the Hub and we cannot find the requested files in the local cache. Please check "
                     "your connection and try again or make sure your Internet connection is on.")


@pytest.mark.parametrize("width", [120, 200, 260, 400])
def test_error_summary_never_cuts_a_word(width):
    from negbench.models.base import error_summary

    line = error_summary(RuntimeError(OPEN_CLIP_OFFLINE), width)
    assert line.startswith("RuntimeError: Failed to download weights")
    words = set(OPEN_CLIP_OFFLINE.split())
    assert all(w in words or w == "..." for w in line.removeprefix("RuntimeError: ").split()), line
    if width >= 260:  # room for the last sentence: what to do
        assert line.endswith("make sure your Internet connection is on.")


def test_error_summary_keeps_a_short_message_whole_and_joins_lines():
    from negbench.models.base import error_summary

    assert error_summary(OSError("no such file\n  at /x")) == "OSError: no such file at /x"
    assert error_summary(ValueError("")) == "ValueError"


def test_offline_open_clip_tag_says_so_without_a_cut_word():
    from negbench.models.base import load_model

    with pytest.raises(ConfigError) as err:  # HF_HUB_OFFLINE=1 (conftest): nothing is downloaded
        load_model("openclip:ViT-B-32-quickgelu@openai", device="cpu")
    msg = str(err.value)
    assert "(offline?)" in msg and "\n" not in msg
    assert msg.endswith(".)"), msg  # the underlying message ends at a sentence, not inside a word


# ---------------------------------------------------------------- 3. a --limit that keeps every item

def test_limit_keeping_every_item_is_the_full_run(sample_tasks, tiny_openclip_model, tmp_path):
    import negbench

    out = tmp_path / "res"
    run = negbench.evaluate(tiny_openclip_model, "sample_mcq", data_root=sample_tasks.parent, results_dir=out,
                            limit=1000, bootstrap_samples=20, cache_dir=None)
    doc = run.results[0].data
    assert doc["counts"]["items"] == 50 and doc["limited"] is False and doc["limit"] is None
    assert not run.results[0].marks and "--limit" not in repr(run)
    from negbench.evaluation.engine import result_is_current
    from negbench.inputs.tasks import get_task

    spec = get_task("sample_mcq")
    settings = dict(data_root=sample_tasks.parent, bootstrap_samples=20)
    assert result_is_current(spec, tiny_openclip_model, out, **settings)              # a full run reuses it
    assert result_is_current(spec, tiny_openclip_model, out, limit=50, **settings)    # 50 of 50: the same
    assert not result_is_current(spec, tiny_openclip_model, out, limit=49, **settings)  # a real subset never
    assert not result_is_current(spec, tiny_openclip_model, out, limit=0.5, **settings)


def test_a_real_subset_is_never_reused_for_the_full_task(sample_tasks, tiny_openclip_model, tmp_path):
    import negbench
    from negbench.evaluation.engine import result_is_current
    from negbench.inputs.tasks import get_task

    out = tmp_path / "res"
    run = negbench.evaluate(tiny_openclip_model, "sample_mcq", data_root=sample_tasks.parent, results_dir=out,
                            limit=7, bootstrap_samples=20, cache_dir=None)
    assert run.results[0].data["limited"] is True and run.results[0].data["counts"]["items"] == 7
    spec, settings = get_task("sample_mcq"), dict(data_root=sample_tasks.parent, bootstrap_samples=20)
    assert result_is_current(spec, tiny_openclip_model, out, limit=7, **settings)
    assert not result_is_current(spec, tiny_openclip_model, out, **settings)
    assert not result_is_current(spec, tiny_openclip_model, out, limit=1000, **settings)


# ---------------------------------------------------------------- 4. --limit values

@pytest.mark.parametrize("value", ["0", "1.5", "-3", "ten"])
def test_bad_limit_says_what_is_allowed(value, capsys):
    line = _one_line_error(["eval", "--limit", value], capsys)
    assert ("argument --limit: must be a whole number >= 1 (items) or a fraction in (0, 1) (a share), "
            f"got '{value}'") in line
    assert "_limit" not in line and "usage:" not in line


@pytest.mark.parametrize("text,value", [("7", 7), ("0.25", 0.25), ("100.0", 100), ("1e3", 1000)])
def test_good_limits_parse(text, value):
    from negbench.evaluation.config import parse_limit

    parsed = parse_limit(text)
    assert parsed == value and type(parsed) is type(value)


def test_api_limit_error_has_the_same_words():
    from negbench.evaluation.config import EvalConfig

    with pytest.raises(ConfigError, match=r"--limit must be a whole number >= 1 \(items\) or a fraction"):
        EvalConfig(limit=0)


# ---------------------------------------------------------------- 5. flags

def test_underscore_spellings_of_our_flags_are_accepted():
    from negbench.cli import build_parser, parse_args

    args = parse_args(build_parser(), ["eval", "--batch_size", "8", "--num_workers=0", "--skip_existing",
                                       "--data_root", "d", "--tasks", "a_b"])
    assert (args.batch_size, args.num_workers, args.skip_existing, args.data_root) == (8, 0, True, "d")
    assert args.tasks == ["a_b"]  # values keep their underscores


def test_unknown_flag_is_one_short_line_with_the_suggestion_first(capsys):
    line = _one_line_error(["eval", "--batchsize", "8"], capsys)
    assert line.startswith("negbench eval: error: --batchsize: did you mean --batch-size?")
    assert len(line) < 160


# ---------------------------------------------------------------- 6. --skip-existing output

def _block(out: str, task: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(f"{task}  ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return lines[start:end]


def test_reused_result_is_one_line_in_the_fresh_order(sample_tasks, tiny_openclip_model, tmp_path, capsys):
    argv = _eval(sample_tasks, tiny_openclip_model, tmp_path / "r", "--tasks", "sample_mcq,sample_retrieval",
                 "--no-cache")
    assert main(argv) == 0
    fresh = capsys.readouterr().out
    assert main(argv + ["--skip-existing"]) == 0
    captured = capsys.readouterr()
    reused = captured.out
    for task in ("sample_mcq", "sample_retrieval"):
        a, b = _block(fresh, task), _block(reused, task)
        assert a[:-2] == b[:-1]  # the same lines in the same order; then how it was obtained
        assert a[-2].startswith("  (") and a[-1].startswith("  -> ")   # timings, path
        path = tmp_path / "r" / model_slug(tiny_openclip_model) / f"{task}.json"
        created = json.loads(path.read_text())["created"]
        assert b[-1] == f"  reused {path} (computed {created})"
    assert reused.count(" reused ") == 2 and "skipping" not in reused + captured.err
    assert "recomputed and replaced" not in reused


def test_rerun_without_skip_existing_says_once_that_it_recomputed(sample_tasks, tiny_openclip_model, tmp_path, capsys):
    argv = _eval(sample_tasks, tiny_openclip_model, tmp_path / "r", "--tasks", "sample_mcq,sample_binary")
    assert main(argv) == 0
    assert "recomputed" not in capsys.readouterr().out  # nothing was there
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("recomputed and replaced; --skip-existing reuses") == 1
    # with --skip-existing, a stored result of other inputs is replaced without advice to pass the flag
    assert main(argv + ["--skip-existing", "--bootstrap-samples", "30"]) == 0
    out = capsys.readouterr().out
    assert out.count("an earlier result of other inputs was there: recomputed and replaced") == 1
    assert "--skip-existing reuses" not in out


# ---------------------------------------------------------------- 7. small n, gallery <= k, chance

def _retrieval_result(n_media: int, captions_per: int = 5) -> dict:
    metric = lambda v, n: {"value": v, "ci_low": 0.5, "ci_high": 1.0, "n": n}  # noqa: E731
    metrics = {f"{d}_recall@{k}": metric(1.0, n_media * captions_per if d == "t2i" else n_media)
               for d in ("t2i", "i2t") for k in (1, 5, 10)}
    return {"task": {"name": "tiny_retrieval", "kind": "retrieval", "modality": "video"}, "model": "m",
            "metrics": metrics, "chance": None, "status": "complete", "limit": None, "limited": False,
            "counts": {"items": n_media, "skipped": 0, "unique_media": n_media,
                       "unique_captions": n_media * captions_per},
            "timings": {"total_s": 1.0}, "cache": {}}


def test_console_flags_small_n_and_a_gallery_no_larger_than_k():
    from negbench.analysis.report.tables import SMALL_N
    from negbench.cli.eval import format_result, summary_table

    text = format_result(_retrieval_result(4))
    r5 = next(l for l in text.splitlines() if l.strip().startswith("t2i_recall@5 "))
    assert "n=20" in r5 and f"small n (20 < {SMALL_N})" in r5 and "gallery of 4 <= k=5" in r5
    r1 = next(l for l in text.splitlines() if l.strip().startswith("t2i_recall@1 "))
    assert "gallery" not in r1  # R@1 over 4 media measures something
    assert "chance 100.0% for t2i_recall@5" in text  # k / gallery, as the report says
    assert "gallery of 4 <= k=5" in summary_table([_retrieval_result(4)])
    big = format_result(_retrieval_result(60, 5))
    assert "small n" not in big and "gallery of" not in big and "chance 8.3% for t2i_recall@5" in big


def test_console_marks_small_question_types(sample_tasks, tiny_openclip_model, tmp_path, capsys):
    from negbench.analysis.report.tables import SMALL_N

    assert main(_eval(sample_tasks, tiny_openclip_model, tmp_path / "r", "--tasks", "sample_mcq", "--limit", "6",
                      "--no-cache")) == 0
    block = _block(capsys.readouterr().out, "sample_mcq")
    assert "6 items, LIMITED to the first 6 (--limit 6)" in block[0] and "chance 25.0%" in block[0]
    typed = [l for l in block if ", n=" in l]
    assert typed and all("small n (" in l and f"< {SMALL_N})" in l for l in typed)


# ---------------------------------------------------------------- 8. --help

def test_model_help_lists_every_registered_backend(capsys):
    from negbench.models.base import MODEL_BACKENDS

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in MODEL_BACKENDS.names():
        assert f"{name}:" in help_text
    assert "negaware:METHOD:BASE" in help_text


# ---------------------------------------------------------------- 9. the API's printing and quiet loading

def test_evalrun_repr_has_interval_and_n(sample_tasks, tiny_openclip_model):
    import negbench

    run = negbench.evaluate(tiny_openclip_model, "sample_mcq", data_root=sample_tasks.parent, bootstrap_samples=20,
                            cache_dir=None)
    head = run.results[0].metric("accuracy")
    line = repr(run).splitlines()[1]
    assert f"accuracy={100 * head['value']:.1f}% [{100 * head['ci_low']:.1f}, {100 * head['ci_high']:.1f}], n=50" in line
    assert repr(run).startswith("<EvalRun 1 result, 50 per-item predictions>")


def test_api_hides_transformers_loading_bar_and_restores_it(sample_tasks, tiny_hf_dir, capfd):
    import negbench
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    negbench.evaluate(f"hf:{tiny_hf_dir}", "sample_binary", data_root=sample_tasks.parent, bootstrap_samples=20,
                      cache_dir=None, progress=False)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == verbosity  # the user's again


# ---------------------------------------------------------------- 10. words

def test_counts_are_pluralised():
    from negbench.cli.eval import EvalOutcome, format_result, plural

    assert (plural(1, "item"), plural(2, "item"), plural(0, "task")) == ("1 item", "2 items", "0 tasks")
    assert "(retrieval, video; 1 item, 0 skipped;" in format_result(_retrieval_result(1, 1))
    outcome = EvalOutcome(not_evaluated=[("t", "why")])
    assert outcome.report() == 2
