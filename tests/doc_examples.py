"""The examples in README.md and docs/ that tests run or check: each marked `<!-- example: KIND [PATH] -->` on the
line before its fenced block.

- `banner`: lines of `make dev`'s banner, each found in the stack's output in the order shown (a shortened banner
  leaves lines out);
- `log`: entries of the stack's output (a line and the indented lines under it), each found in it, in any order
  (the stack's processes write concurrently);
- `answer`: what the banner's curl command prints;
- `console`: `$ command` lines, run in order in one bash (so a variable set by one holds in the next), each followed
  by lines of what it prints, found in its output in that order; the environment is the one the page's prose asks
  for (`API` and `TOKEN`: the banner's API URL and client token);
- `file PATH`: the block is that file of the repository, as it is;
- `part PATH`: each paragraph of the block is in that file.

In a shown line `…` stands for anything. Times of day, ports on 127.0.0.1, milliseconds and the `PORT=<port>` the
banner adds for a port other than 3000 are compared as what they are, not by value.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("banner", "log", "answer", "console", "file", "part")
_EXAMPLE = re.compile(
    r"^<!-- example: (?P<kind>[a-z]+)(?: (?P<path>\S+))? -->\n```[^\n]*\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL
)
_NORMALIZED = [
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), "HH:MM:SS"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"\(\d+ ms\)"), "(N ms)"),
    (re.compile(r"\bPORT=\d+ "), ""),
]


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    kind: str
    path: str | None
    body: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} ({self.kind})"

    @property
    def lines(self) -> list[str]:
        return self.body.splitlines()


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(kind: str | None = None) -> list[Example]:
    found = []
    for page in pages():
        text = page.read_text()
        for match in _EXAMPLE.finditer(text):
            if match["kind"] not in KINDS:
                raise ValueError(f"{page.name}: an example of no known kind, {match['kind']!r}: one of {KINDS}")
            line = text.count("\n", 0, match.start()) + 1
            found.append(Example(page, line, match["kind"], match["path"], match["body"]))
    return [example for example in found if kind in (None, example.kind)]


def normal(line: str) -> str:
    line = " ".join(line.split())
    for pattern, replacement in _NORMALIZED:
        line = pattern.sub(replacement, line)
    return line


def like(shown: str) -> Callable[[str], bool]:
    """Whether a line of output is the shown line: `…` matches anything."""
    pattern = re.compile(".*?".join(re.escape(part) for part in normal(shown).split("…")))
    return lambda line: pattern.fullmatch(normal(line)) is not None


def first_missing_in_order(shown: Iterable[str], output: list[str]) -> str | None:
    """The first shown line with no line like it in `output` after the one before it was found; None: all were."""
    at = 0
    for line in filter(str.strip, shown):
        matches = like(line)
        found = next((index for index in range(at, len(output)) if matches(output[index])), None)
        if found is None:
            return line
        at = found + 1
    return None


def entries(shown: list[str]) -> list[list[str]]:
    """A log's entries: each line with the indented lines under it."""
    grouped: list[list[str]] = []
    for line in shown:
        if line.startswith(" ") and grouped:
            grouped[-1].append(line)
        elif line.strip():
            grouped.append([line])
    return grouped


def missing_entries(shown: list[str], output: list[str]) -> list[list[str]]:
    """The entries with no run of lines like them in `output`."""

    def present(entry: list[str]) -> bool:
        tests = [like(line) for line in entry]
        return any(
            all(test(output[start + offset]) for offset, test in enumerate(tests))
            for start in range(len(output) - len(entry) + 1)
        )

    return [entry for entry in entries(shown) if not present(entry)]


@dataclass(frozen=True)
class Step:
    command: str
    shown: list[str]


def steps(example: Example) -> list[Step]:
    """A console example's commands (a `\\` at a line's end continues it) and the lines shown after each."""
    found: list[Step] = []
    continued = False
    for line in example.lines:
        if continued:
            found[-1] = Step(found[-1].command + "\n" + line, [])
        elif line.startswith("$ "):
            found.append(Step(line[2:], []))
        elif found:
            found[-1].shown.append(line)
        continued = line.endswith("\\") and bool(found) and not found[-1].shown
    return found


def run_console(example: Example, environment: dict[str, str], timeout: float = 60) -> list[str]:
    """Run a console example's commands in one bash, in the repository; what did not go as shown."""
    commands = steps(example)
    marker = "@@example-step@@"
    script = "exec 2>&1\nset -e\n" + "".join(f"echo {marker}\n{step.command}\n" for step in commands)
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    outputs = result.stdout.split(f"{marker}\n")[1:]
    problems = []
    for step, output in zip(commands, outputs, strict=False):
        if (missing := first_missing_in_order(step.shown, output.splitlines())) is not None:
            problems.append(f"{example}: `{step.command}` printed no line like {missing!r}; it printed:\n{output}")
    if result.returncode != 0:
        failed = commands[len(outputs) - 1].command if outputs else "bash"
        problems.append(f"{example}: `{failed}` failed ({result.returncode}):\n{outputs[-1] if outputs else ''}")
    return problems
