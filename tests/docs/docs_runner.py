"""Run a Markdown page's code blocks in order, as a new reader would, in a fresh folder.

What runs (a fence's language decides):

* ```` ```bash ```` / ```` ```sh ````: the whole block, as one bash script with ``set -eo pipefail``
  (the first failing line fails the block). Exported variables and ``cd`` carry over to the
  page's later blocks, as in one terminal.
* ```` ```console ````: each ``$ command`` (continued by a trailing ``\\``) runs alone; the lines
  after it, up to the next ``$``, are its shown output (stdout and stderr together). A command
  with shown output must print it (see :func:`match_output`), whatever its exit code; a command
  with none shown must exit 0.
* ```` ```python ````: a complete script, run by the page's ``python`` (``python -``) in the
  page's folder.

Every other language (json, text, toml, ...) is an illustration and is not run. An HTML comment
on the line right before a fence (invisible on GitHub) changes what happens to the block:

* ``<!-- fragment -->``: not run (a synopsis with placeholders, a piece of a larger file);
* ``<!-- file: PATH -->``: the block is written to ``PATH`` (relative to the page's folder) and
  not run, so a later block can run or import it;
* ``<!-- check: RPF601 -->`` (codes, comma-separated, or ``none``): the block is not run but
  checked with ``reproflow check``'s rules, which must report exactly these codes (the Bad and
  Fix examples of docs/checks.md).

Placeholders a reader replaces with their own values are filled in: ``RUN_ID`` with the newest
recorded run that is not a replay (the run the page recorded), ``RUN_A``/``RUN_B`` with the
two newest such runs (older, newer), ``/path/to/reproflow`` with this checkout.

Any block whose output holds a Python traceback fails, whatever its exit code, with one
exception named in :data:`KNOWN_UPSTREAM_LOGS`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
from pathlib import Path

RUN_LANGS = {"bash", "sh", "shell", "console", "python"}
REPO = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<info>[^`\n]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<body>.*?)\s*-->\s*$")


@dataclasses.dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    directive: str | None = None

    @property
    def where(self) -> str:
        try:
            rel = self.page.relative_to(REPO)
        except ValueError:
            rel = self.page
        return f"{rel}:{self.line}"

    @property
    def file_target(self) -> str | None:
        if self.directive and self.directive.startswith("file:"):
            return self.directive[len("file:"):].strip()
        return None

    @property
    def check_codes(self) -> set[str] | None:
        """``<!-- check: RPF601 -->``: the codes `reproflow check` must report for the block
        (``none``: no finding)."""
        if self.directive and self.directive.startswith("check:"):
            codes = {c.strip() for c in self.directive[len("check:"):].split(",")}
            return set() if codes == {"none"} else codes
        return None

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGS and self.directive is None


class DocsFailure(AssertionError):
    """A block that did not run, or whose shown output no longer matches."""


def parse_blocks(page: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of a page with its language and the directive comment before it."""
    lines = (page.read_text() if text is None else text).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        lang = (m["info"].strip().split() or [""])[0].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence[0] * len(fence)) and lines[j].strip().strip(fence[0]) == ""
        ):
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        directive = None
        k = i - 1
        if k >= 0:
            d = _DIRECTIVE.match(lines[k])
            if d:
                directive = d["body"]
        blocks.append(Block(page, i + 1, lang, "\n".join(body) + "\n", directive))
        i = j + 1
    return blocks


# -- output comparison --------------------------------------------------------------------

_NORMALIZERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\x1b\[[0-9;]*[A-Za-z]"), ""),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), "<time>"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,64}\b"), "<hex>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|s|min)\b"), "<dur>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(B|kB|KB|KiB|MB|MiB|GB|GiB)\b"), "<size>"),
    (re.compile(r"\s+"), " "),
]


def normalize(line: str) -> str:
    """One line with what differs between runs (ids, hashes, times, durations, sizes, spacing)
    replaced by a token, so a shown line stays true of every run."""
    for pat, repl in _NORMALIZERS:
        line = pat.sub(repl, line)
    return line.strip()


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in normalize(expected).split("...")]
    return re.compile("^" + ".*".join(parts) + "$")


def match_output(expected: str, actual: str) -> str | None:
    """``None`` when every non-blank shown line matches an actual line, in order (other actual
    lines may come between: a page may trim), else the first shown line that did not match.
    Lines compare after :func:`normalize`; ``...`` inside a shown line matches any text."""
    actual_lines = [normalize(a) for a in actual.splitlines()]
    actual_lines = [a for a in actual_lines if a]
    pos = 0
    for exp in expected.splitlines():
        if not normalize(exp) or normalize(exp) == "...":
            continue
        pat = _line_pattern(exp)
        while pos < len(actual_lines) and not pat.match(actual_lines[pos]):
            pos += 1
        if pos == len(actual_lines):
            return exp
        pos += 1
    return None


# -- running --------------------------------------------------------------------------------


@dataclasses.dataclass
class Session:
    """One page's terminal: its folder, environment and working directory."""

    root: Path
    env: dict[str, str]
    cwd: Path
    timeout: float = 600.0
    log: list[str] = dataclasses.field(default_factory=list)

    def bash(self, script: str) -> tuple[int, str]:
        """Run ``script`` in bash with this session's state; keep the exported variables and the
        working directory it ends with."""
        with tempfile.TemporaryDirectory(prefix="docs-sh-") as tmp:
            envf, pwdf = Path(tmp) / "env", Path(tmp) / "pwd"
            full = (
                f"trap 'env -0 > {envf}; pwd > {pwdf}' EXIT\n"
                "set -eo pipefail\n" + script
            )
            proc = subprocess.run(
                ["bash", "-c", full], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, timeout=self.timeout,
            )
            if envf.exists():
                pairs = [p.split("=", 1) for p in envf.read_text().split("\0") if "=" in p]
                self.env = {k: v for k, v in pairs if not k.startswith("BASH_FUNC_") and k not in ("_", "SHLVL", "OLDPWD")}
            if pwdf.exists():
                self.cwd = Path(pwdf.read_text().strip())
        self.log.append(f"$ {script.replace(_SHELL_RUNS, '').strip()}\n{proc.stdout}")
        return proc.returncode, proc.stdout

    def python(self, code: str) -> tuple[int, str]:
        proc = subprocess.run(
            ["python", "-"], input=code, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=self.timeout,
        )
        self.log.append(f">>> python\n{proc.stdout}")
        return proc.returncode, proc.stdout

    # placeholders -------------------------------------------------------------------------

    def _recorded_runs(self) -> list[str]:
        code = (
            "from reproflow.store import Store\n"
            "for r in Store().list_runs():\n"
            "    if not r.replay_of: print(r.run_id)\n"
        )
        proc = subprocess.run(
            ["python", "-c", code], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=120,
        )
        if proc.returncode:
            raise DocsFailure(f"cannot list the page's runs to fill RUN_ID:\n{proc.stdout}")
        return proc.stdout.split()

    def fill_shell(self, text: str) -> str:
        """Placeholders in a shell script, looked up when the line runs (a block may record the
        run it then names)."""
        text = text.replace("/path/to/reproflow", str(REPO))
        if not re.search(r"\bRUN_(ID|A|B)\b", text):
            return text
        text = re.sub(r"\bRUN_ID\b", "$(__docs_run 0)", text)
        text = re.sub(r"\bRUN_A\b", "$(__docs_run 1)", text)
        text = re.sub(r"\bRUN_B\b", "$(__docs_run 0)", text)
        return _SHELL_RUNS + text

    def fill(self, text: str, block: Block) -> str:
        text = text.replace("/path/to/reproflow", str(REPO))
        if not re.search(r"\bRUN_(ID|A|B)\b", text):
            return text
        runs = self._recorded_runs()
        if not runs:
            raise DocsFailure(f"{block.where}: the block names RUN_ID but the page has recorded no run yet")
        text = re.sub(r"\bRUN_ID\b", runs[0], text)
        if re.search(r"\bRUN_[AB]\b", text):
            if len(runs) < 2:
                raise DocsFailure(f"{block.where}: the block names RUN_A and RUN_B but the page recorded one run")
            text = re.sub(r"\bRUN_A\b", runs[1], text)
            text = re.sub(r"\bRUN_B\b", runs[0], text)
        return text

    # blocks -------------------------------------------------------------------------------

    def run_block(self, block: Block) -> None:
        target = block.file_target
        if target is not None:
            path = self.cwd / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
            return
        expected = block.check_codes
        if expected is not None:
            from reproflow.checks import check_source

            found = {f.code for f in check_source(block.text, "example.py")}
            if found != expected:
                raise DocsFailure(
                    f"{block.where}: `reproflow check` reports {sorted(found) or 'nothing'} for this example, "
                    f"the page says {sorted(expected) or 'nothing'}\n-- block --\n{block.text}"
                )
            return
        if not block.runs:
            return
        if block.lang == "python":
            rc, out = self.python(self.fill(block.text, block))
            self._check(block, "python block", rc, out)
        elif block.lang == "console":
            for cmd, shown in console_commands(block.text):
                rc, out = self.bash(self.fill_shell(cmd))
                if shown.strip():
                    self._check(block, cmd, 0, out, tolerate_rc=True)
                    miss = match_output(shown, out)
                    if miss is not None:
                        raise DocsFailure(
                            f"{block.where}: `{cmd}` no longer prints the shown line\n    {miss.strip()}\n"
                            f"-- it printed (exit {rc}) --\n{out[-6000:]}"
                        )
                else:
                    self._check(block, cmd, rc, out)
        else:
            rc, out = self.bash(self.fill_shell(block.text))
            self._check(block, "bash block", rc, out)

    def _check(self, block: Block, what: str, rc: int, out: str, tolerate_rc: bool = False) -> None:
        if (rc and not tolerate_rc) or "Traceback (most recent call last)" in without_known_upstream_logs(out):
            raise DocsFailure(
                f"{block.where}: {what.strip().splitlines()[0]} failed (exit {rc})\n"
                f"-- block --\n{block.text}-- output --\n{out[-8000:]}"
            )


# A traceback logged by a library, not raised by the page's code, that a reader can meet under
# load through no fault of the page. Each is named by the upstream issue that tracks it, and
# stated on the page that can print it.
KNOWN_UPSTREAM_LOGS = {
    # dask/distributed#7105 (open): as a LocalCluster shuts down, a worker whose heartbeat is in
    # flight when the scheduler closes the connection logs this with the OSError's traceback.
    # The flow's result, its exit code and the records are complete (docs/scale.md says so).
    # In distributed's own log format, or in Prefect's ("HH:MM:SS.mmm | ERROR   |
    # distributed.worker - ..."), where the worker process has Prefect's logging set up.
    "dask/distributed#7105": re.compile(
        r"distributed\.worker - (ERROR - )?Failed to communicate with scheduler during heartbeat\.$"
    ),
}
# The exceptions distributed's heartbeat catches and logs (it catches OSError; a closed comm
# is a CommClosedError, raised from tornado's StreamClosedError).
_HEARTBEAT_EXC = re.compile(
    r"^(tornado\.iostream\.StreamClosedError|distributed\.comm\.core\.CommClosedError|"
    r"(builtins\.)?(OSError|ConnectionResetError|ConnectionRefusedError|BrokenPipeError|TimeoutError)):?( .*)?$"
)
_CHAINED = re.compile(r"^(The above exception was the direct cause of the following exception:|"
                      r"During handling of the above exception, another exception occurred:)$")


def _chain_end(lines: list[str], j: int) -> int | None:
    """Where the chain of tracebacks starting at ``lines[j]`` ends (the index after it), when
    each of them ends in one of the exceptions distributed's heartbeat logs; else None."""
    while True:  # one traceback of the chain: header, indented frames, the exception
        k = j + 1
        while k < len(lines) and lines[k].startswith(" "):
            k += 1
        if k >= len(lines) or not _HEARTBEAT_EXC.match(lines[k]):
            return None
        nxt = k + 1
        while nxt < len(lines) and not lines[nxt].strip():
            nxt += 1
        if not (nxt + 2 < len(lines) and _CHAINED.match(lines[nxt]) and not lines[nxt + 1].strip()
                and lines[nxt + 2] == "Traceback (most recent call last):"):
            return k + 1
        j = nxt + 2


def without_known_upstream_logs(out: str) -> str:
    """``out`` less each logged traceback of :data:`KNOWN_UPSTREAM_LOGS`: the log line, then its
    chain of tracebacks, each ending in one of the exceptions that log is made for. Whatever
    does not fit that shape exactly (another exception, any other line) is kept, so a traceback
    of the page's own, even right after one of these, still fails the block."""
    lines = out.split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = next((m for rx in KNOWN_UPSTREAM_LOGS.values() if (m := rx.search(line))), None)
        end = (_chain_end(lines, i + 1) if match is not None and i + 1 < len(lines)
               and lines[i + 1] == "Traceback (most recent call last):" else None)
        if match is None or end is None:
            kept.append(line)
            i += 1
            continue
        # the text before the log record on its line (another process's output) stays, less
        # the record's timestamp
        kept.append(re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - $", "", line[: match.start()]))
        i = end
    return "\n".join(kept)


_SHELL_RUNS = """__docs_run() {
  python -c 'import sys
from reproflow.store import Store
runs = [r.run_id for r in Store().list_runs() if not r.replay_of]
print(runs[int(sys.argv[1])])' "$1"
}
"""


def console_commands(text: str) -> list[tuple[str, str]]:
    """``(command, shown output)`` for each ``$ `` line of a console block."""
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            i += 1
            continue
        cmd = line[2:]
        while cmd.endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd = cmd[:-1] + "\n" + lines[i]
        i += 1
        shown: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        out.append((cmd, "\n".join(shown)))
    return out


def run_page(page: Path, session: Session) -> None:
    for block in parse_blocks(page):
        session.run_block(block)
