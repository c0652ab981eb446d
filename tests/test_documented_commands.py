"""Every shell command the documentation shows works as typed, in a scratch copy of the repository.

The commands and their classification are tests/documented_commands.py's: the fast tier checks that each one is
classified (an unknown command fails here); the slow tier runs the quick study once in a copy of the repository and
there runs, dry-runs or skips each command, as its rule says.
"""

import re
from pathlib import Path

import pytest

from documented_commands import (
    DRY_RUN,
    QUICK_STUDY,
    REPO,
    SKIP,
    Command,
    as_executed,
    classify,
    documented_commands,
    shell,
)

COMMANDS = documented_commands()


def test_every_documented_command_is_classified():
    plan = [(c, *classify(c)) for c in COMMANDS]
    counts = {action: sum(a == action for _, a, _ in plan) for action in sorted({a for _, a, _ in plan})}
    print("\n".join(f"{c.source}: {action}: {c.text} ({reason})" for c, action, reason in plan), counts)
    assert any(c.text == QUICK_STUDY for c in COMMANDS)  # the README's quick check, which the slow test runs first
    assert any(c.text.startswith("snakemake --report") for c in COMMANDS)
    assert all(action == SKIP for c, action, _ in plan if re.match(r"(python -m )?pytest", c.text))
    assert all(as_executed(c, action) for c, action, _ in plan if action != SKIP)  # a dry-run flag for each


def test_the_usage_lines_and_bash_blocks_are_found_and_an_unknown_command_fails():
    sources = {where.split(":")[0] for c in COMMANDS for where in c.source.split(", ")}
    assert {"README.md", "Snakefile", "workflow/config/quick.yaml", "docs/cluster.md"} <= sources
    assert "snakemake --cores all" in [c.text for c in COMMANDS if "Snakefile:" in c.source]  # without its description
    with pytest.raises(ValueError, match="no rule"):
        classify(Command("README.md:1", "make install"))
    with pytest.raises(ValueError, match="no rule"):
        classify(Command("README.md:1", "snakemake --cores all; rm -rf results"))  # the whole command must match


def worked_examples() -> dict[str, str]:
    """The code blocks of the documentation that name a file on their first line (``# src/.../name.py``), by name."""
    blocks = {}
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for body in re.findall(r"```python\n# (\S+\.py)[^\n]*\n(.*?)```", path.read_text(), re.S):
            blocks[Path(body[0]).name] = body[1]
    return blocks


def write_the_files_it_names(command: Command, cwd: Path) -> None:
    """A command that names ``$PWD/<file>`` absent from the repository uses the worked example of that name."""
    examples = worked_examples()
    for name in re.findall(r"\$PWD/([\w.-]+)", command.text):
        if not (cwd / name).exists():
            assert name in examples, f"{command.source}: {name} is neither in the repository nor a worked example"
            (cwd / name).write_text(examples[name].lstrip("\n"))


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.source}:{c.text}" for c in COMMANDS])
def test_a_documented_command_works(command, quick_study_copy):
    action, reason = classify(command)
    if action == SKIP:
        pytest.skip(f"{command.source}: {command.text}: {reason}")
    write_the_files_it_names(command, quick_study_copy)
    line = as_executed(command, action)
    result = shell(line, quick_study_copy)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command.source}: {line} ({action})\n{output[-4000:]}"
    assert "does not provide the extra" not in output, output[-2000:]
    if action == DRY_RUN and line.startswith("snakemake"):
        assert re.search(r"This was a dry-run|Nothing to be done", output), output[-2000:]
