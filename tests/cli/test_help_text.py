"""--help text: a docstring's paragraphs reach the terminal as paragraphs it wraps itself,
not as the source's 80-column lines broken again at the terminal's width."""

from typer.testing import CliRunner

from sufdec.cli.app import app, reflow

runner = CliRunner()


def test_reflow_joins_lines_and_keeps_lists() -> None:
    doc = """First line.

    A sentence that the source
    broke in the middle.

    Steps:
    - one
    - two
    """
    assert reflow(doc) == "First line.\n\nA sentence that the source broke in the middle.\n\nSteps:\n- one\n- two"


def test_every_command_help_reads_as_sentences() -> None:
    for args in (["evict"], ["share", "retention"], ["compact"], ["bench", "hosts"]):
        res = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "400"}, terminal_width=400)
        assert res.exit_code == 0, res.output
        lines = [line.strip() for line in res.output.splitlines()]
        # at 400 columns no paragraph of a docstring needs a second line
        body = lines[lines.index(next(x for x in lines if x.startswith("Usage:"))) + 2 :]
        paragraph = body[: body.index("")]
        assert len(paragraph) == 1, paragraph
    res = runner.invoke(app, ["evict", "--help"], env={"COLUMNS": "400"}, terminal_width=400)
    assert "Eviction is one transaction: the tree and the store shrink together." in res.output
