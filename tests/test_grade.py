"""pdlib.grade: student copies, and grading executed notebooks (chapter 01 solved, blank, wrong).

The three submissions are graded once, through the command line, by a module-level fixture
(about 7 s on 2 cores, the notebooks running side by side); the other tests only read its output.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import nbformat
import pytest

from pdlib import exercises, grade

ROOT = Path(__file__).resolve().parents[1]
CH01 = ROOT / "notebooks" / "01_two_phases.ipynb"
CH01_IDS = [i for i in exercises.ids() if i.startswith("ch01.")]


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _solved(nb):
    """Chapter 01 with every exercise cell's code replaced by the solution cell that follows it."""
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        if "exercise" in _tags(cell):
            sol = next(c for c in nb.cells[i + 1:] if "solution" in _tags(c))
            cell.source = sol.source
    return nb


def _wrong() -> nbformat.NotebookNode:
    """A small submission: one answer off by 1000x, one answered twice (wrong, then right), one cell
    that raises, and a solution-tagged cell that must not count."""
    cells = [
        nbformat.v4.new_code_cell("from pdlib.exercises import check\nfrom pdlib import hardware"),
        nbformat.v4.new_markdown_cell("### Exercise 1"),
        nbformat.v4.new_code_cell('answer = 153e3  # FLOP/B\ncheck("ch01.ridge_a100", answer)'),
        nbformat.v4.new_code_cell('check("ch01.decode_ridge_batch", 10)\n'
                                  'check("ch01.decode_ridge_batch", 324)'),
        nbformat.v4.new_code_cell('answer = 1 / 0  # seconds\ncheck("ch01.decode_70b_tp8", answer)'),
        nbformat.v4.new_code_cell('check("ch01.l40s_hbm", "no")'),
    ]
    cells[5].metadata["tags"] = ["hide-cell", "solution"]
    for c in (cells[2], cells[4]):
        c.metadata["tags"] = ["exercise"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    ch01 = nbformat.read(CH01, as_version=4)
    nbformat.write(_solved(ch01), folder / "a_solved.ipynb")
    nbformat.write(grade.strip_solutions(ch01), folder / "b_blank.ipynb")
    nbformat.write(_wrong(), folder / "c_wrong_01.ipynb")
    (folder / "d_broken.ipynb").write_text("{not json")
    out = folder / "grades.json"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        rc = grade.main([str(folder), "--json", str(out), "--jobs", "3", "--timeout", "60"])
    reports = {Path(n["path"]).stem: n for n in json.loads(out.read_text())["notebooks"]}
    return rc, text.getvalue(), reports


def _by_id(report) -> dict[str, dict]:
    return {e["id"]: e for e in report["exercises"]}


def test_chapter01_has_checked_exercises():
    assert CH01_IDS == sorted(["ch01.ridge_a100", "ch01.decode_ridge_batch", "ch01.decode_70b_tp8",
                               "ch01.l40s_hbm"])


def test_cli_exits_0_and_prints_a_table_per_notebook(graded):
    rc, text, reports = graded
    assert rc == 0
    assert sorted(reports) == ["a_solved", "b_blank", "c_wrong_01", "d_broken"]
    assert text.count("== ") == 4
    assert "a_solved.ipynb (ch01): 4 pass [" in text
    assert "b_blank.ipynb (ch01): 4 not answered [" in text


def test_solutions_filled_in_all_pass(graded):
    report = graded[2]["a_solved"]
    assert report["error"] is None and report["cell_errors"] == []
    assert report["chapters"] == ["ch01"]
    assert [e["id"] for e in report["exercises"]] == \
        ["ch01.ridge_a100", "ch01.decode_ridge_batch", "ch01.decode_70b_tp8", "ch01.l40s_hbm"]
    assert {e["status"] for e in report["exercises"]} == {"pass"}
    assert report["counts"] == {"pass": 4, "fail": 0, "not answered": 0, "error": 0, "not checked": 0}


def test_blank_chapter_all_not_answered_with_the_question(graded):
    report = graded[2]["b_blank"]
    assert report["error"] is None and report["cell_errors"] == []
    by_id = _by_id(report)
    assert sorted(by_id) == CH01_IDS
    for ex_id, e in by_id.items():
        assert e["status"] == "not answered"
        assert e["message"] == f"not answered yet. {exercises.describe(ex_id)}"


def test_wrong_answer_gets_expected_value_ratio_and_hint(graded):
    e = _by_id(graded[2]["c_wrong_01"])["ch01.ridge_a100"]
    assert e["status"] == "fail"
    # A100-80GB: 312 TFLOP/s / 2.039 TB/s = 153.0 FLOP/B (NVIDIA A100 datasheet)
    assert "expected 153 FLOP/B ± 2%" in e["message"]
    assert "yours is 1e+03× that" in e["message"]
    assert "Off by a factor of 1000: a unit prefix" in e["message"]
    assert "Hint: ridge = peak FLOP/s ÷ bandwidth" in e["message"]


def test_last_check_counts_errors_are_located_and_solution_cells_ignored(graded):
    report = graded[2]["c_wrong_01"]
    by_id = _by_id(report)
    assert by_id["ch01.decode_ridge_batch"]["status"] == "pass"           # 10 then 324: last wins
    err = by_id["ch01.decode_70b_tp8"]
    assert err["status"] == "error"
    assert err["message"] == ("cell 5, line 1: answer = 1 / 0  # seconds -> "
                              "ZeroDivisionError: division by zero")
    assert report["cell_errors"] == [{"cell": 5, "line": 1, "source_line": "answer = 1 / 0  # seconds",
                                      "ename": "ZeroDivisionError", "evalue": "division by zero"}]
    # the solution-tagged cell was removed before running, so this exercise was never checked
    assert by_id["ch01.l40s_hbm"]["status"] == "not checked"
    assert "never checked" in by_id["ch01.l40s_hbm"]["message"]
    assert report["counts"] == {"pass": 1, "fail": 1, "not answered": 0, "error": 1, "not checked": 1}
    assert "1 cell error(s); grading went on after each" in graded[1]


def test_unreadable_notebook_is_reported_not_fatal(graded):
    report = graded[2]["d_broken"]
    assert report["exercises"] == [] and report["chapters"] == []
    assert report["error"].startswith("cannot read notebook: NotJSONError")
    assert "NOT (FULLY) GRADED: cannot read notebook" in graded[1]


def test_strip_solutions_of_chapter01():
    nb = nbformat.read(CH01, as_version=4)
    student = grade.strip_solutions(nb)
    n_solution = sum("solution" in _tags(c) for c in nb.cells)
    assert n_solution >= len(CH01_IDS)
    assert len(student.cells) == len(nb.cells) - n_solution
    assert not any("solution" in _tags(c) for c in student.cells)
    exercise_cells = [c for c in student.cells if "exercise" in _tags(c)]
    assert len(exercise_cells) == len(CH01_IDS)
    assert all(c.source.startswith("answer = None  # ") for c in exercise_cells)
    md = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    assert "Solution discussion" not in md and "Solution discussion" in \
        "\n".join(c.source for c in nb.cells)
    assert "### Exercise 5 (open)" in md                          # the question itself stays
    assert len(nb.cells) == len(nbformat.read(CH01, as_version=4).cells)   # input not modified


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")),
                         ids=lambda p: p.stem)
def test_student_copy_of_every_chapter_hides_all_answers(path):
    nb = nbformat.read(path, as_version=4)
    student = grade.strip_solutions(nb)
    assert not any("solution" in _tags(c) for c in student.cells)
    exercise_cells = [c for c in student.cells if "exercise" in _tags(c)]
    assert len(exercise_cells) >= 2
    assert all(c.source.startswith("answer = None") for c in exercise_cells)
    md = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    for title in ("{admonition} Solution", "{admonition} Discussion", "{dropdown}"):
        assert title not in md
    # a box may be computed: a code cell whose f-string output is the admonition ({{ }} escapes)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code").replace("{{", "{").replace("}}", "}")
    assert "{admonition} Discussion" not in code and "{admonition} Solution" not in code
    assert "{admonition} What we learned" in md + code           # other boxes stay


def test_strip_resets_answers_and_outputs():
    cell = nbformat.v4.new_code_cell(
        'answer = (153 +\n          0)  # FLOP/B\ncheck("ch01.ridge_a100", answer)',
        execution_count=3, outputs=[nbformat.v4.new_output("stream", text="x")])
    cell.metadata["tags"] = ["exercise"]
    md = nbformat.v4.new_markdown_cell("Q?\n\n::::{admonition} Solution\n:class: dropdown\n"
                                       ":::{note}\nnested\n:::\nsecret\n::::\nAfter.")
    student = grade.strip_solutions(nbformat.v4.new_notebook(cells=[md, cell]))
    assert student.cells[0].source == "Q?\n\nAfter."
    assert student.cells[1].source == 'answer = None  # FLOP/B\ncheck("ch01.ridge_a100", answer)'
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None


def test_strip_solutions_cli_writes_folder_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "handout"
    with contextlib.redirect_stdout(io.StringIO()):
        assert grade.main(["--strip-solutions", str(CH01), str(out / "01_two_phases.ipynb")]) == 0
    written = nbformat.read(out / "01_two_phases.ipynb", as_version=4)
    assert not any("solution" in _tags(c) for c in written.cells)
    with pytest.raises(ValueError, match="refusing to overwrite"):
        grade.strip_solutions_path(CH01, CH01)


def test_usage_errors_exit_2(tmp_path, capsys):
    assert grade.main([str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook or folder at" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hi")
    assert grade.main([str(tmp_path / "notes.txt")]) == 2
    assert "is not a notebook" in capsys.readouterr().err
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        grade.grade([CH01], jobs=0)
