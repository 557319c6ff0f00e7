"""Grade students' copies of the chapters, and make the copies to hand out.

A chapter's exercises are checked inside the notebook by :func:`pdlib.exercises.check`, which
records every feedback it gives. Grading a submission therefore means: remove the cells tagged
``solution`` (so the student's own answers are judged, not the hidden solutions), execute the
rest in a fresh ``python3`` kernel (errors do not stop the run), append one cell that prints the
recorded feedback as JSON after a random marker, and read it back from that cell's output::

    python -m pdlib.grade submissions/                 # every *.ipynb in the folder, one table each
    python -m pdlib.grade alice.ipynb bob.ipynb --json grades.json
    python -m pdlib.grade --strip-solutions notebooks/01_two_phases.ipynb handout/01_two_phases.ipynb

Each exercise ends in one status: ``pass``, ``fail``, ``not answered`` (``answer`` left at
``None``), ``error`` (its cell raised before ``check`` recorded anything) or ``not checked`` (an
exercise of the chapter that the notebook never checked, e.g. a deleted cell). When one exercise
is checked several times, the last check counts: it is the notebook's final state. Grading trusts
the kernel: it is a classroom aid, not a defence against a student who rewrites ``check``.

Needs ``nbformat`` and ``nbclient`` (installed with the ``book`` and ``test`` extras); they are
imported only when a notebook is read, so ``import pdlib`` does not need them.
"""
from __future__ import annotations

import argparse
import ast
import copy
import io
import json
import re
import secrets
import sys
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["STATUSES", "CellError", "ExerciseResult", "NotebookReport", "find_notebooks",
           "grade", "grade_notebook", "main", "strip_solutions", "strip_solutions_path"]

#: Every status an exercise can get, in the order the summary line counts them.
STATUSES = ("pass", "fail", "not answered", "error", "not checked")

_CHECK_CALL = re.compile(r"""check\(\s*["'](ch\d+\.[A-Za-z0-9_]+)["']""")
_CHAPTER_FILE = re.compile(r"(?:^|\D)(\d{2})_")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# the MyST blocks that hold the answer of an open exercise: "Solution…", "Discussion", "Answer"
_SOLUTION_FENCE = re.compile(r"^(?P<fence>:{3,}|`{3,})\s*\{(?:admonition|dropdown)\}\s*"
                             r"(?:solution|discussion|answer)", re.IGNORECASE)


@dataclass(frozen=True)
class CellError:
    """An error raised by one cell of a submission (cells counted from 1 in the submitted file)."""

    cell: int                  # 1-based position of the cell in the submitted notebook
    line: int | None           # 1-based line in that cell, when the traceback names it
    source_line: str           # that line of code ("" when unknown)
    ename: str                 # exception class, e.g. "ZeroDivisionError"
    evalue: str                # exception message

    def __str__(self) -> str:
        where = f"cell {self.cell}"
        if self.line is not None:
            where += f", line {self.line}: {self.source_line.strip()}"
        return f"{where} -> {self.ename}: {self.evalue}"


@dataclass(frozen=True)
class ExerciseResult:
    """The grade of one exercise: its id, a status from :data:`STATUSES` and the feedback text."""

    id: str
    status: str
    message: str


@dataclass(frozen=True)
class NotebookReport:
    """Everything grading learned about one notebook."""

    path: str
    chapters: tuple[str, ...]          # e.g. ("ch01",): the chapters whose exercises it holds
    exercises: tuple[ExerciseResult, ...]
    cell_errors: tuple[CellError, ...]
    error: str | None                  # the notebook could not be read or its kernel died
    seconds: float                     # wall time of the execution

    def counts(self) -> dict[str, int]:
        """Number of exercises in each status (every status of :data:`STATUSES` present)."""
        return {s: sum(e.status == s for e in self.exercises) for s in STATUSES}

    def table(self) -> str:
        """A plain-text report: a summary line, one row per exercise, then the cell errors."""
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items() if n)
        head = f"== {self.path} ({', '.join(self.chapters) or 'no chapter'}): {counts or 'no exercises'} " \
               f"[{self.seconds:.1f} s]"
        lines = [head]
        if self.error:
            lines.append(f"   NOT (FULLY) GRADED: {self.error}")
        if self.exercises:
            w = max(len("exercise"), *(len(e.id) for e in self.exercises))
            lines.append(f"   {'exercise':<{w}}  {'status':<12}  feedback")
            lines += [f"   {e.id:<{w}}  {e.status:<12}  {e.message}" for e in self.exercises]
        if self.cell_errors:
            lines.append(f"   {len(self.cell_errors)} cell error(s); grading went on after each:")
            lines += [f"   - {err}" for err in self.cell_errors]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``counts`` included)."""
        d = asdict(self)
        d["counts"] = self.counts()
        return d


# --------------------------------------------------------------------------------------------
# Student copies


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _reset_answer(source: str) -> str:
    """Rewrite every top-level ``answer = ...`` statement as ``answer = None``, keeping its comment."""
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        spans = [(i + 1, i + 1) for i, ln in enumerate(lines) if re.match(r"answer\s*=(?!=)", ln)]
    else:
        spans = [(n.lineno, n.end_lineno or n.lineno) for n in tree.body
                 if isinstance(n, ast.Assign) and len(n.targets) == 1
                 and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "answer"]
    if not spans:
        return source
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string
    except (tokenize.TokenError, SyntaxError):
        pass
    for first, last in reversed(spans):
        comment = next((comments[i] for i in range(last, first - 1, -1) if i in comments), "")
        lines[first - 1:last] = [f"answer = None  {comment}".rstrip()]
    return "\n".join(lines)


def _drop_solution_blocks(markdown: str) -> str:
    """Remove MyST ``{admonition}``/``{dropdown}`` blocks titled "Solution…", "Discussion…" or
    "Answer…" from a markdown cell (the hidden answers of open exercises)."""
    out, fence = [], None
    for line in markdown.splitlines():
        if fence is None:
            m = _SOLUTION_FENCE.match(line.strip())
            if m:
                fence = m.group("fence")
                continue
            out.append(line)
        elif line.strip() == fence:
            fence = None
    return "\n".join(out).rstrip()


def strip_solutions(nb):
    """A student copy of notebook ``nb`` (an ``nbformat.NotebookNode``; ``nb`` is not changed).

    Cells tagged ``solution`` are removed, "Solution"/"Discussion"/"Answer" admonitions and
    dropdowns are cut out of the markdown, cells tagged ``exercise`` get ``answer = None`` back,
    and all outputs and execution counts are cleared.
    """
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        if "solution" in _tags(cell):
            continue
        if cell.cell_type == "markdown":
            cell.source = _drop_solution_blocks(cell.source)
        if cell.cell_type == "code":
            if "exercise" in _tags(cell):
                cell.source = _reset_answer(cell.source)
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    nb.cells = cells
    return nb


def strip_solutions_path(src: str | Path, dst: str | Path) -> list[Path]:
    """Write student copies: ``src`` a notebook (``dst`` a file, or an existing folder) or a
    folder of notebooks (``dst`` a folder, created if needed). Returns the files written."""
    import nbformat

    src, dst = Path(src), Path(dst)
    if src.is_dir():
        pairs = [(p, dst / p.name) for p in find_notebooks([src])]
    elif src.is_file():
        pairs = [(src, dst / src.name if dst.is_dir() else dst)]
    else:
        raise FileNotFoundError(f"no notebook or folder at {src}")
    for s, d in pairs:
        if s.resolve() == d.resolve():
            raise ValueError(f"refusing to overwrite {s} with its own student copy; pick another OUT")
        d.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(strip_solutions(nbformat.read(s, as_version=4)), d)
    return [d for _, d in pairs]


# --------------------------------------------------------------------------------------------
# Grading


def find_notebooks(paths: Sequence[str | Path]) -> list[Path]:
    """The notebooks named by ``paths``: files as given, folders by their ``*.ipynb`` (not
    recursive; checkpoints skipped). Raises FileNotFoundError for a path that does not exist and
    ValueError for a file that is not an .ipynb."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.glob("*.ipynb") if q.is_file())
        elif p.is_file():
            if p.suffix != ".ipynb":
                raise ValueError(f"{p} is not a notebook (.ipynb)")
            found.append(p)
        else:
            raise FileNotFoundError(f"no notebook or folder at {p}")
    return found


def _collector_source(marker: str) -> str:
    return (
        "import json as _pdlib_grade_json\n"
        "try:\n"
        "    from pdlib.exercises import results as _pdlib_grade_results\n"
        "    _pdlib_grade_payload = [{'exercise': f.exercise, 'ok': f.ok, 'message': f.message}\n"
        "                            for f in _pdlib_grade_results()]\n"
        "except Exception as _pdlib_grade_error:\n"
        "    _pdlib_grade_payload = {'error': f'{type(_pdlib_grade_error).__name__}: {_pdlib_grade_error}'}\n"
        f"print({marker!r} + _pdlib_grade_json.dumps(_pdlib_grade_payload))\n"
    )


def _cell_error(cell, position: int, timeout: float) -> CellError | None:
    err = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    if err is None:
        return None
    trace = _ANSI.sub("", "\n".join(err.get("traceback", [])))
    refs = re.findall(r"Cell In\[(\d+)\], line (\d+)", trace)
    own = [ln for n, ln in refs if str(n) == str(cell.get("execution_count"))]
    line = int((own or [ln for _, ln in refs] or [0])[0]) or None
    src = cell.source.splitlines()
    source_line = src[line - 1] if line and line <= len(src) else ""
    ename, evalue = err.get("ename", "Error"), _ANSI.sub("", str(err.get("evalue", "")))
    if ename == "KeyboardInterrupt" and not evalue:   # nbclient interrupts a cell that times out
        evalue = f"interrupted: the cell ran longer than the {timeout:g} s allowed per cell"
    return CellError(position, line, source_line, ename, evalue)


def _chapters(nb, path: Path) -> tuple[str, ...]:
    refs = {i.split(".")[0] for c in nb.cells if c.cell_type == "code" for i in _CHECK_CALL.findall(c.source)}
    if not refs and (m := _CHAPTER_FILE.search(path.name)):
        refs = {f"ch{m.group(1)}"}
    return tuple(sorted(refs))


def grade_notebook(path: str | Path, *, timeout: float = 120, cwd: str | Path | None = None,
                   kernel_name: str = "python3") -> NotebookReport:
    """Execute one submission (solution cells removed) and grade its exercises.

    ``timeout`` is seconds per cell (a cell running longer is interrupted and reported as an
    error); ``cwd`` is the kernel's working folder (default: the notebook's own folder, so the
    chapter's relative paths work). Cell errors never stop the run.
    """
    import nbformat
    from nbclient import NotebookClient

    from . import exercises

    path = Path(path)
    start = time.perf_counter()
    try:
        submitted = nbformat.read(path, as_version=4)
    except Exception as e:  # a broken file is a grading result, not a crash of the grader
        return NotebookReport(str(path), (), (), (), f"cannot read notebook: {type(e).__name__}: {e}", 0.0)

    # keep each remaining cell's position in the submitted file, for the error report
    kept = [(i + 1, c) for i, c in enumerate(submitted.cells) if "solution" not in _tags(c)]
    nb = copy.deepcopy(submitted)
    nb.cells = [copy.deepcopy(c) for _, c in kept]
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    marker = f"PDLIB-GRADE-{secrets.token_hex(8)}:"
    nb.cells.append(nbformat.v4.new_code_cell(_collector_source(marker)))
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": kernel_name, "language": "python"}

    workdir = Path(cwd) if cwd else path.parent.resolve()
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                            interrupt_on_timeout=True, resources={"metadata": {"path": str(workdir)}})
    fatal = None
    try:
        client.execute()
    except Exception as e:  # dead kernel, missing kernel: report and grade what ran
        fatal = f"execution stopped: {type(e).__name__}: {e}"
    seconds = time.perf_counter() - start

    cell_errors = [ce for (pos, _), c in zip(kept, nb.cells) if (ce := _cell_error(c, pos, timeout))]
    stdout = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", [])
                     if o.get("output_type") == "stream")
    payload: Any = None
    for line in stdout.splitlines():
        if line.startswith(marker):
            payload = json.loads(line[len(marker):])
    if isinstance(payload, dict):
        fatal = fatal or f"could not read the exercise results: {payload['error']}"
        payload = None
    if payload is None and fatal is None:
        fatal = "the notebook printed no exercise results"

    last: dict[str, dict] = {}
    for fb in payload or []:
        last.pop(fb["exercise"], None)        # re-insert: order of the last check
        last[fb["exercise"]] = fb

    # exercises referenced by the notebook's code, in order, and the cell that references each
    referenced: dict[str, int] = {}
    for (pos, _), c in zip(kept, nb.cells):
        if c.cell_type == "code":
            for ex_id in _CHECK_CALL.findall(c.source):
                referenced.setdefault(ex_id, pos)
    errors_by_cell = {ce.cell: ce for ce in cell_errors}
    chapters = _chapters(nb, path)
    known = set(exercises.ids())

    results: list[ExerciseResult] = []
    order = list(referenced) + [i for i in last if i not in referenced]
    for ex_id in order:
        if ex_id in last:
            ok = last[ex_id]["ok"]
            status = {True: "pass", False: "fail", None: "not answered"}[ok]
            results.append(ExerciseResult(ex_id, status, last[ex_id]["message"]))
        elif referenced[ex_id] in errors_by_cell:
            results.append(ExerciseResult(ex_id, "error", str(errors_by_cell[referenced[ex_id]])))
        else:
            why = "its cell did not run" if fatal else "check() was never called on it"
            question = exercises.describe(ex_id) if ex_id in known else "(not a known exercise id)"
            results.append(ExerciseResult(ex_id, "not checked", f"{why}. {question}"))
    for ex_id in sorted(known):
        if ex_id.split(".")[0] in chapters and ex_id not in order:
            results.append(ExerciseResult(ex_id, "not checked",
                                          f"never checked in this notebook. {exercises.describe(ex_id)}"))
    return NotebookReport(str(path), chapters, tuple(results), tuple(cell_errors), fatal, seconds)


def grade(paths: Sequence[str | Path], *, jobs: int = 1, timeout: float = 120,
          cwd: str | Path | None = None, kernel_name: str = "python3") -> list[NotebookReport]:
    """Grade every notebook named by ``paths`` (files or folders), ``jobs`` kernels at a time;
    reports come back in the order of :func:`find_notebooks`."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    notebooks = find_notebooks(paths)
    def one(p: Path) -> NotebookReport:
        return grade_notebook(p, timeout=timeout, cwd=cwd, kernel_name=kernel_name)
    if jobs == 1 or len(notebooks) < 2:
        return [one(p) for p in notebooks]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, notebooks))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m pdlib.grade PATH [PATH ...]`` or ``--strip-solutions IN OUT``.

    Exit status 0 when grading ran (whatever the answers), 2 for a usage error (missing path, not
    a notebook).
    """
    ap = argparse.ArgumentParser(
        prog="python -m pdlib.grade",
        description="Execute students' notebooks (solution cells removed) and report every "
                    "pdlib.exercises check: pass, fail, not answered, error, not checked.")
    ap.add_argument("paths", nargs="*", metavar="PATH", help="a notebook, or a folder of notebooks")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON to this file")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per cell (default 120)")
    ap.add_argument("--jobs", "-j", type=int, default=1, help="notebooks run at once (default 1)")
    ap.add_argument("--cwd", help="working folder of the kernels (default: each notebook's folder)")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    ap.add_argument("--strip-solutions", nargs=2, metavar=("IN", "OUT"),
                    help="write a student copy of notebook/folder IN to OUT, then stop")
    args = ap.parse_args(argv)

    try:
        if args.strip_solutions:
            for written in strip_solutions_path(*args.strip_solutions):
                print(f"wrote {written}")
            return 0
        if not args.paths:
            ap.error("give at least one PATH to grade, or --strip-solutions IN OUT")
        notebooks = find_notebooks(args.paths)
        if not notebooks:
            ap.error(f"no notebooks found in {', '.join(args.paths)}")
        reports = grade(notebooks, jobs=args.jobs, timeout=args.timeout, cwd=args.cwd,
                        kernel_name=args.kernel)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in reports:
        print(r.table(), end="\n\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"notebooks": [r.to_dict() for r in reports]}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
