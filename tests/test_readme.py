"""The README's code blocks, run as a new user runs them (issue 33: a command that stops working fails CI).

Every fenced block in README.md carries one marker on the line above it (an HTML comment, invisible
when rendered), and a block without one fails the test:

- `<!-- readme-test: run -->`: each command runs as written, in a folder holding `demo-out` made by
  the README's own `negbench demo --size tiny --out demo-out`; it must exit 0. Python blocks run as a
  script there.
- `<!-- readme-test: offline-error -->`: commands that need downloads, weights or data this machine
  lacks. Each runs (HOME is the sandbox, so `~/negbench-data` does not exist) and must exit 0, or fail
  with one line `negbench CMD: error: ...` and no traceback. `negbench data download` and commands
  that are not negbench's are parsed, never run (an online CI must not fetch COCO).
- `<!-- readme-test: parse -->`: commands too long for CI (pre-training, GPUs, torchrun). Every
  `negbench` command is parsed by the real parser and its task and suite names checked; `torchrun ...
  -m negbench.train` arguments by the trainer's parser; `python bench/X.py` must name an existing file;
  `make X` an existing target.
- `<!-- readme-test: output -->`: what a command printed, not a command.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"<!-- readme-test: (run|offline-error|parse|output) -->")
FENCE = re.compile(r"^```(\w*)\s*$")
NEVER_RUN = ("negbench data download",)  # fetches gigabytes where there is a network
ONE_LINE_ERROR = re.compile(r"^negbench( [\w-]+)*: error: \S")


@dataclass
class Block:
    line: int          # 1-based line of the opening fence
    lang: str
    mode: str | None
    text: str

    def commands(self) -> list[str]:
        """Shell commands: continuation lines joined, comments and blank lines dropped."""
        out, cur = [], ""
        for raw in self.text.splitlines():
            line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
            if not line.strip() and not cur:
                continue
            if line.endswith("\\"):
                cur += line[:-1].strip() + " "
                continue
            cur += line.strip()
            if cur:
                out.append(cur)
            cur = ""
        return out


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = MARKER.search(prev)
        blocks.append(Block(i + 1, m.group(1), marker.group(1) if marker else None, "\n".join(lines[i + 1:j])))
        i = j + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _env(sandbox: Path) -> dict:
    env = dict(os.environ)
    env.update(HOME=str(sandbox), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               NEGBENCH_CACHE_DIR=str(sandbox / ".cache" / "negbench" / "embeddings"))
    return env


def _sh(cmd: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=_env(cwd), capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------- every block is classified

def test_every_block_has_a_marker():
    missing = [f"README.md:{b.line} ({b.lang or 'no language'})" for b in BLOCKS if b.mode is None]
    assert not missing, f"fenced blocks without a <!-- readme-test: ... --> marker: {missing}"
    assert sum(b.mode == "run" for b in BLOCKS) >= 3


def test_readme_stays_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) < 400


def test_the_demo_the_run_blocks_use_is_the_readmes():
    """The sandbox runs the README's own tiny-demo command, so `demo-out` is what a reader's is."""
    assert any("negbench demo --size tiny --out demo-out" in b.commands() for b in BLOCKS)


# ---------------------------------------------------------------- parse: flags, task names, files

def _parse_negbench(argv: list[str]) -> None:
    from negbench.cli import build_parser, parse_args
    from negbench.inputs.tasks import SUITES, TASKS, load_builtin_tasks

    args = parse_args(build_parser(), argv)  # exits 2 (SystemExit) on an unknown flag or command
    load_builtin_tasks()
    local = {"tasks-file", "data-root"} & {a.lstrip("-") for a in argv}
    for name in getattr(args, "tasks", None) or []:
        assert name in TASKS or name == "list" or local or name.endswith(".yaml"), f"unknown task {name!r}"
    for name in getattr(args, "suite", None) or []:
        assert name in SUITES or local, f"unknown suite {name!r}"


def _parse_command(cmd: str) -> None:
    argv = shlex.split(cmd)
    if argv[0] == "negbench":
        _parse_negbench(argv[1:])
    elif argv[0] == "torchrun":  # torchrun's own flags, then -m MODULE and the module's flags
        module, rest = argv[argv.index("-m") + 1], argv[argv.index("-m") + 2:]
        if module == "negbench.eval":
            _parse_negbench(["eval", *rest])
        else:
            import argparse

            from negbench.train import command

            assert module == "negbench.train", cmd
            parser = argparse.ArgumentParser(allow_abbrev=False)
            command.add_arguments(parser)
            parser.parse_args(rest)
    elif argv[0] in ("python", ".venv/bin/python") and argv[1].startswith("bench/"):
        assert (REPO / argv[1]).is_file(), argv[1]
    elif argv[0] == "make":
        assert re.search(rf"^{re.escape(argv[1])}:", (REPO / "Makefile").read_text(), re.M), argv[1]
    elif argv[0] == ".venv/bin/python" and argv[1:3] == ["-m", "pytest"]:
        assert all((REPO / a).exists() for a in argv[3:] if a.startswith("tests/")), cmd
    # anything else (vllm serve, pip install) is another project's command


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode in ("parse", "offline-error")],
                         ids=lambda b: f"line{b.line}")
def test_block_commands_parse(block):
    for cmd in block.commands():
        try:
            _parse_command(cmd)
        except SystemExit as exc:
            pytest.fail(f"README.md:{block.line}: `{cmd}` does not parse (exit {exc.code})")


# ---------------------------------------------------------------- offline-error: one line, no traceback

@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "offline-error"], ids=lambda b: f"line{b.line}")
def test_block_fails_in_one_line_without_data(block, tmp_path):
    for cmd in block.commands():
        if not cmd.startswith("negbench ") or cmd.startswith(NEVER_RUN):
            continue
        run = _sh(cmd, tmp_path, timeout=300)
        out = run.stdout + run.stderr
        assert "Traceback" not in out, f"README.md:{block.line}: `{cmd}` printed a traceback:\n{out[-2000:]}"
        if run.returncode != 0 and run.stderr.strip():
            last = run.stderr.strip().splitlines()[-1]
            assert ONE_LINE_ERROR.match(last), f"README.md:{block.line}: `{cmd}` exit {run.returncode}: {out[-1500:]}"
            assert len(last) < 600, last
        elif run.returncode != 0:  # a report that found something missing (`data check`): said on stdout
            assert run.stdout.strip(), f"README.md:{block.line}: `{cmd}` exit {run.returncode} and said nothing"


# ---------------------------------------------------------------- run: as written, on the tiny demo

@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A folder where the README's demo command has run (what `make demo` makes, at the tiny size)."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    root = tmp_path_factory.mktemp("readme")
    start = time.monotonic()
    run = _sh("negbench demo --size tiny --out demo-out", root, timeout=1500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"tiny demo: {time.monotonic() - start:.0f} s")
    return root


RUN_BLOCKS = [b for b in BLOCKS if b.mode == "run"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_run_blocks_as_written(sandbox):
    """All `run` blocks, in README order, in one folder (a later block may read what an earlier wrote)."""
    from report_checks import check_headline

    for block in RUN_BLOCKS:
        if block.lang == "python":
            script = sandbox / f"readme_{block.line}.py"
            script.write_text(block.text)
            run = subprocess.run([sys.executable, script.name], cwd=sandbox, env=_env(sandbox), capture_output=True,
                                 text=True, timeout=600)
            assert run.returncode == 0, f"README.md:{block.line} (python):\n{run.stdout[-2000:]}{run.stderr[-3000:]}"
            continue
        for cmd in block.commands():
            run = _sh(cmd, sandbox)
            assert run.returncode == 0, f"README.md:{block.line}: `{cmd}` exit {run.returncode}:\n" \
                                        f"{run.stdout[-2000:]}{run.stderr[-3000:]}"
    # every report the README makes says nothing its tables contradict
    reports = [p for p in sandbox.rglob("report.md")]
    assert reports
    for md in reports:
        check_headline(md.read_text(encoding="utf-8"))


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_and_anchors_resolve():
    """Every relative link of the README names a file that exists, and its #anchor a heading there."""
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        doc = REPO / path if path else README
        assert doc.exists(), f"README links to a missing file: {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", doc.read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(h) for h in headings}, f"README links to a missing anchor: {target}"
