"""The tutorials run as written: every fenced block of docs/tutorials/*.md, in order.

Each tutorial runs in a fresh empty folder of its own, one block after another, as a reader
would type them (docs/tutorials/index.md tells writers the same rules):

- ```bash: run with ``bash -e -o pipefail`` in that folder, the venv's ``bin`` first on PATH
  (``riskq-train``, ``python``, ``pytest``, ...), and ``scripts`` a link to the repository's
  ``scripts/`` folder, as in a clone's root.
- ```python title="PATH", ```yaml title="PATH" (any language with a title): written to PATH.
- ```python without a title: run as a script by the venv's Python in that folder.
- ```text and ```console: output shown to the reader, not run.
- ``<!-- test: ... -->`` right before a block changes how this test runs it. Its words are
  split like a shell line: ``replace OLD NEW`` substitutes text in the block first (budgets
  shrink this way, so the suite stays fast while the page shows real ones), ``expect TEXT``
  asks that the block's output (stdout and stderr) contain TEXT.

A block that fails, or whose output lacks an expected text, fails the test with the block's
line in the page and the end of its output.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
RUN_LANGUAGES = {"bash", "python"}
SHOWN_LANGUAGES = {"text", "console"}
BLOCK_TIMEOUT_S = 600
FENCE = re.compile(r'^```(?P<language>[\w-]*)(?:\s+title="(?P<title>[^"]+)")?\s*$')
DIRECTIVE = re.compile(r"^<!--\s*test:(?P<words>.*?)-->\s*$")
DIRECTIVE_ARITY = {"replace": 2, "expect": 1}


@dataclass
class Block:
    """One fenced block of a page, with the test's directives for it."""

    line: int  # 1-based line of the opening fence
    language: str
    title: str | None
    text: str
    replace: list[tuple[str, str]] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)

    def prepared(self) -> str:
        text = self.text
        for old, new in self.replace:
            if old not in text:
                raise ValueError(f"line {self.line}: replace {old!r}: not in the block")
            text = text.replace(old, new)
        return text


def parse_directive(words: str, *, line: int) -> tuple[list, list]:
    """``replace OLD NEW`` and ``expect TEXT`` words -> (replacements, expected texts)."""
    tokens, replace, expect = shlex.split(words), [], []
    while tokens:
        name = tokens.pop(0)
        if name not in DIRECTIVE_ARITY or len(tokens) < DIRECTIVE_ARITY[name]:
            raise ValueError(
                f"line {line}: bad test directive {name!r}; valid: replace OLD NEW, expect TEXT"
            )
        args = [tokens.pop(0) for _ in range(DIRECTIVE_ARITY[name])]
        if name == "replace":
            replace.append(tuple(args))
        else:
            expect.append(args[0])
    return replace, expect


def parse_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page`` with the directives of the comment just before it."""
    lines = page.read_text().splitlines()
    blocks, pending, index = [], None, 0
    while index < len(lines):
        line = lines[index]
        if match := DIRECTIVE.match(line):  # directive lines in a row add up
            replace, expect = parse_directive(match["words"], line=index + 1)
            pending = (pending[0] + replace, pending[1] + expect) if pending else (replace, expect)
        elif match := FENCE.match(line):
            end = next(
                (k for k in range(index + 1, len(lines)) if lines[k].startswith("```")), None
            )
            if end is None:
                raise ValueError(f"{page.name}: line {index + 1}: unclosed code block")
            replace, expect = pending or ([], [])
            text = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(
                Block(index + 1, match["language"], match["title"], text, replace, expect)
            )
            pending, index = None, end
        elif line.strip():
            pending = None  # a directive applies to the very next block only
        index += 1
    return blocks


def environment() -> dict[str, str]:
    """The reader's shell: the venv's commands first on PATH, no inherited Hydra debugging."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "PYTHONPATH")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    return env


def command(block: Block, text: str) -> list[str] | None:
    """How a block runs; None for one that is written to a file or only shown."""
    if block.title is not None or block.language in SHOWN_LANGUAGES:
        return None
    if block.language == "bash":
        return ["bash", "-e", "-o", "pipefail", "-c", text]
    if block.language == "python":
        return [sys.executable, "-c", text]
    raise ValueError(
        f"line {block.line}: block language {block.language!r} is neither run nor shown"
    )


def run_tutorial(page: Path, folder: Path) -> None:
    (folder / "scripts").symlink_to(ROOT / "scripts")
    env = environment()
    for block in parse_blocks(page):
        text = block.prepared()
        if block.title is not None:
            path = folder / block.title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        argv = command(block, text)
        if argv is None:
            continue
        done = subprocess.run(
            argv, cwd=folder, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
        )
        output = done.stdout + done.stderr
        where = f"{page.relative_to(ROOT)}, block at line {block.line}"
        assert done.returncode == 0, f"{where} exited {done.returncode}:\n{output[-3000:]}"
        for expected in block.expect:
            assert expected in output, f"{where}: {expected!r} not in its output:\n{output[-3000:]}"


def test_every_tutorial_has_blocks_that_run():
    assert len(TUTORIALS) >= 7  # index and the six tutorials
    for page in TUTORIALS:
        blocks = parse_blocks(page)
        if page.name != "index.md":
            assert any(b.language in RUN_LANGUAGES and b.title is None for b in blocks), page.name


def test_directives_are_parsed_and_bad_ones_refused(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        '<!-- test: replace "t_max=20000" t_max=400 expect "a b" -->\n'
        "<!-- test: replace riskq-train riskq-eval -->\n"
        "```bash\nriskq-train t_max=20000\n```\n\n"
        '```yaml title="cfg/x.yaml"\nk: 1\n```\n'
    )
    first, second = parse_blocks(page)
    assert (first.line, first.language, first.expect) == (3, "bash", ["a b"])
    assert first.prepared() == "riskq-eval t_max=400\n"
    assert (second.title, second.text) == ("cfg/x.yaml", "k: 1\n")
    with pytest.raises(ValueError, match="bad test directive 'skip'"):
        parse_directive("skip", line=1)
    page.write_text("<!-- test: replace absent x -->\n```bash\necho hi\n```\n")
    with pytest.raises(ValueError, match="not in the block"):
        parse_blocks(page)[0].prepared()


@pytest.mark.parametrize(
    "page", [p for p in TUTORIALS if p.name != "index.md"], ids=lambda p: p.stem
)
def test_tutorial_runs_as_written(page, tmp_path):
    run_tutorial(page, tmp_path)


# Pages that cite a test by name (``tests/test_x.py::test_name``) point at one that exists.

CITED_TEST = re.compile(r"`(tests/test_\w+\.py)::(\w+)`")
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_cited_test_exists(page):
    for path, name in CITED_TEST.findall(page.read_text()):
        source = ROOT / path
        assert source.is_file(), f"{page.name} cites {path}, which does not exist"
        assert re.search(rf"^def {name}\(", source.read_text(), re.M), (
            f"{page.name} cites {path}::{name}, which {path} does not define"
        )
