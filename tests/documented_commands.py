"""The shell commands the documentation shows, collected and classified: run, dry-run or skip, each with a reason.

Where commands are shown:
* the fenced ``bash`` blocks of README.md and docs/*.md, one command a line (``\\`` continues a line);
* the usage lines of the Snakefile, environment.yml, workflow/config/*.yaml and workflow/profiles/*/config.yaml:
  the first run of comment lines indented ``#   `` in the file's leading comment block (text after two spaces
  or more is a description, as in the Snakefile's ``snakemake --cores all    the default study``).

A line is split at ``&&`` into commands. Each command takes the action of the first rule of RULES whose pattern
matches it whole; a command no rule matches is an error, so a command added to the documentation is classified
(and tested) by the table, never skipped silently.
"""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK = "workflow/config/quick.yaml"
QUICK_STUDY = f"snakemake --cores all --configfile {QUICK}"  # the README's quick check

RUN = "run"  # as typed, in the scratch copy where the quick study has run
RUN_ON_QUICK = "run on the quick study"  # as typed, on the quick study's config and results
DRY_RUN = "dry-run"  # the same command with its dry-run flag
SKIP = "skip"
SLURM_PLUGIN = "python:snakemake_executor_plugin_slurm"


@dataclass(frozen=True)
class Command:
    source: str  # file:line
    text: str


@dataclass(frozen=True)
class Rule:
    pattern: str  # a regular expression the whole command matches
    action: str
    reason: str
    needs: str = ""  # what the action needs: a program on the PATH, or "python:<module>"; without it, a skip


RULES = [
    Rule(r"(python -m )?pytest( .*)?", SKIP, "the test suite itself, which runs this test"),
    Rule(r'pip install -e "?\.\[\w+(,\w+)*\]"?', DRY_RUN,
         "it would install into the running environment: the dry run, offline, checks that the environment already "
         "holds every requirement of the extra"),
    Rule(r"pip install snakemake-executor-plugin-slurm", DRY_RUN, "installs the plug-in for SLURM clusters",
         needs=SLURM_PLUGIN),
    Rule(r"snakemake --workflow-profile workflow/profiles/slurm .*", DRY_RUN,
         "submits every job to a SLURM cluster: the dry run plans them", needs=SLURM_PLUGIN),
    Rule(r"conda env create -f environment\.yml", DRY_RUN, "builds a conda environment", needs="conda"),
    Rule(r"conda activate \w+", SKIP, "activates an environment in the calling shell: nothing to run on its own"),
    Rule(r"snakemake .*<\w+>.*", SKIP, "a template (<...> stands for a config): its instances are the configs' own "
         "usage lines"),
    Rule(re.escape(QUICK_STUDY), RUN, "the quick study, a few minutes"),
    Rule(r"snakemake (results/\S+ )*--cores all (--resources gpu=\d+ )?(--config shards=\d+ )?"
         r"--configfile workflow/config/(cifar10\w*|imagenet)\.yaml( --config shards=\d+)?", DRY_RUN,
         "a GPU study of days on a dataset the user supplies under data/: the dry run validates the config and "
         "plans every job"),
    Rule(r"snakemake --cores all", DRY_RUN, "the default study, 30 minutes on 2 cores: the dry run plans every job"),
    Rule(r"snakemake --report \S+\.html", RUN_ON_QUICK, "the report of a finished run, here the quick study's"),
    Rule(r"(RSSCALE_PLUGINS=\S+ )?rsscale (methods|harness --methods \w+ --trials \d{1,3} .*|--help)", RUN,
         "an rsscale command of seconds"),
    Rule(r"python workflow/scripts/(stand_in_data|smoke_overlay)\.py \S+( --?[\w-]+ \S+)*( > \S+)?", RUN,
         "a script of seconds: stand-in data files, or a config overlay written next to them"),
    Rule(r"rsscale plan --configfile workflow/config/\w+\.yaml( --\S+ \S+)*", RUN,
         "the cost of a study before it runs: reads the config, probes each model for seconds (or reads a committed "
         "throughput table)"),
]

DRY_RUN_FLAGS = {"snakemake": "--dry-run", "pip install": "--dry-run --no-index --no-build-isolation",  # offline
                 "conda env create": "--dry-run"}


def commands_in_markdown(path: Path) -> list[Command]:
    """Every command of the fenced ``bash`` blocks of a Markdown file."""
    commands, in_bash, pending = [], False, ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_bash = not in_bash and line.strip() == "```bash"
            continue
        if not in_bash or not (pending or line.strip()) or line.lstrip().startswith("#"):
            continue
        if pending:  # a continued line: one space where the shell sees whitespace
            line = line.lstrip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands += split_line(f"{path.relative_to(REPO)}:{number}", pending + line)
        pending = ""
    return commands


def usage_lines(path: Path) -> list[Command]:
    """The commands of a file's usage lines: the first run of ``#   `` lines of its leading comment block."""
    commands, started = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.startswith("#"):
            break
        if line.startswith("#   ") and line[4:5] != " ":
            started = True
            commands += split_line(f"{path.relative_to(REPO)}:{number}", re.split(r"\s{2,}", line[4:])[0])
        elif started:
            break
    return commands


def split_line(source: str, line: str) -> list[Command]:
    """A command line split at ``&&``, a trailing ``# comment`` dropped."""
    line = re.sub(r"\s+#\s.*$", "", line).strip()
    return [Command(source, part.strip()) for part in line.split("&&")]


def documented_commands() -> list[Command]:
    """Every documented command once, in the order of the files and lines that show it (its source: all of them)."""
    markdown = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    headers = [REPO / "Snakefile", REPO / "environment.yml", *sorted((REPO / "workflow" / "config").glob("*.yaml")),
               *sorted((REPO / "workflow" / "profiles").glob("*/config.yaml"))]
    found = [c for p in markdown for c in commands_in_markdown(p)] + [c for p in headers for c in usage_lines(p)]
    sources = {}
    for command in found:
        sources.setdefault(command.text, []).append(command.source)
    return [Command(", ".join(where), text) for text, where in sources.items()]


def classify(command: Command) -> tuple[str, str]:
    """(action, reason) of the first rule matching the command; a rule needing a program this machine lacks skips."""
    for rule in RULES:
        if re.fullmatch(rule.pattern, command.text):
            if rule.needs and not available(rule.needs):
                return SKIP, f"needs {rule.needs.removeprefix('python:')}, absent here: {rule.reason}"
            return rule.action, rule.reason
    raise ValueError(f"{command.source}: no rule of tests/documented_commands.py RULES matches {command.text!r}: "
                     "add one (run, dry-run or skip, with its reason)")


def available(need: str) -> bool:
    """Whether this machine has a program on the PATH, or a Python module (``python:<module>``)."""
    if need.startswith("python:"):
        return importlib.util.find_spec(need.removeprefix("python:")) is not None
    return shutil.which(need) is not None


def as_executed(command: Command, action: str) -> str:
    """The shell line that performs an action on a command: its dry-run flag inserted, or the quick config added."""
    if action == DRY_RUN:
        for program, flags in DRY_RUN_FLAGS.items():
            if command.text.startswith(program + " "):
                return command.text.replace(program, f"{program} {flags}", 1)
        raise ValueError(f"{command.source}: no dry-run flag known for {command.text!r}")
    if action == RUN_ON_QUICK:
        return f"{command.text} --configfile {QUICK}"
    return command.text


def copy_of_repository(destination: Path) -> Path:
    """The repository's files as git sees them (tracked, and untracked unless ignored), without any results."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    return destination


def shell(line: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """A command line in bash, as a user of this environment types it: its programs (python, pip, snakemake,
    rsscale) first on the PATH, the copy's package first on the Python path.  On a timeout, the line's whole process
    group is killed (not only bash), then the timeout raised."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd / "src"), os.environ.get("PYTHONPATH")]))}
    with subprocess.Popen(["bash", "-c", line], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
