"""Every README snippet a user would copy works: specs validate, commands parse, the cheap ones run.

- each fenced ```yaml block is validated by the platform's own loader: a spec (it has `kind:`)
  through `load_spec`; a fragment (`gates:`, `format:`, ...) inside a shipped spec of the kind whose
  schema has those keys (or the shipped file its comment names, whose values it must match);
- each `llmft ...`, `python -m llmft.jobs ...` line of a ```bash/sh/console block is parsed by the real
  CLI (click's `make_context` on typer's command tree, the entrypoint's argparse parser), never run,
  and the spec files it names load with its `key=value` overrides as the kind the command expects;
- the commands that need no Ray (sample data, tenants, keys, audit, registration, the dry runs) run
  for real, in one fresh LLMFT_HOME, on the generated sample and a small stand-in for the tiny base;
- the *Bring your own data* block is the script `jobs/byod/bring-your-own-data.sh`, command for command.

A failure names the README line. Why: the README is the platform's manual; a renamed option or
field must fail here, not on a newcomer's terminal.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
import yaml

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
BYOD_SCRIPT = REPO_ROOT / "jobs" / "byod" / "bring-your-own-data.sh"
SHELL_LANGS = {"bash", "sh", "shell", "console"}

# A shipped spec per kind: a README fragment of that kind is validated inside it.
HOSTS = {"dataset": "jobs/specs/dataset-tickets.yaml", "curation": "jobs/specs/curate-tickets.yaml",
         "training": "jobs/specs/train-lora.yaml", "sweep": "jobs/specs/sweep-lora.yaml",
         "evaluation": "jobs/specs/eval-support.yaml", "deployment": "serve_apps/deploy_support.yaml"}
# Fragments no schema covers, with the reason (none today; a new one must be listed, never skipped silently).
SKIPPED_FRAGMENTS: dict[frozenset[str], str] = {}
# The spec kind each command reads with --spec.
SPEC_KIND = {("data", "register"): "dataset", ("data", "curate"): "curation", ("train", "submit"): "training",
             ("sweep", "run"): "sweep", ("eval", "run"): "evaluation", ("serve", "up"): "deployment",
             ("serve", "status"): "deployment", ("deploy", "create"): "deployment"}
# Programs of shell lines that are not llmft's, and why they are not parsed here.
OTHER_PROGRAMS = {"ray": "Ray's own CLI (`ray start`); a `ray job submit -- ...` entrypoint is parsed",
                  ".": "shell: activating the venv", "export": "shell: an environment variable",
                  "head": "a pipe filter after an llmft command",
                  "python": "`python -` runs the heredoc after it (compiled by test_heredoc_python_compiles)"}
SHELL_TOOLS = {"head", "tail", "grep", "jq", "tee", "sort", "wc", "cat", "python", "python3", "less"}
# Placeholders in README commands -> harmless values (paths are made real by the `placeholders` fixture).
PLACEHOLDER_WORDS = ("CHECKPOINT_DIR", "FOLDER", "IN.jsonl", "DIR")
NEEDS_DRY_RUN = {("data", "curate"), ("train", "submit"), ("jobs", "training")}  # run only as a dry run


@dataclass
class Block:
    lang: str
    line: int  # README line of the block's first content line
    lines: list[str]


@dataclass
class Command:
    line: int
    text: str
    argv: list[str]
    partial: bool = False  # `...` elides arguments: a missing required one is not an error
    stdout_to: str | None = None  # `> FILE`
    tags: set[str] = field(default_factory=set)


def readme_blocks(path: Path = README) -> list[Block]:
    """Fenced blocks (indented ones too), their language and first content line."""
    blocks, current, indent = [], None, 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"^(\s*)```\s*([\w-]*)\s*$", raw)
        if current is None and fence:
            current, indent = Block(fence.group(2).lower(), number + 1, []), len(fence.group(1))
        elif current is not None and raw.strip() == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current.lines.append(raw[indent:] if not raw[:indent].strip() else raw.lstrip())
    assert current is None, f"README.md:{current.line}: unclosed code fence"
    return blocks


def logical_lines(block: Block) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """A shell block's command lines (continuations joined, prompts stripped) and its heredoc bodies."""
    lines, heredocs, i = [], [], 0
    while i < len(block.lines):
        number, text = block.line + i, block.lines[i]
        while text.rstrip().endswith("\\") and i + 1 < len(block.lines):
            i += 1
            text = text.rstrip()[:-1] + " " + block.lines[i].strip()
        text = re.sub(r"^\$ ", "", text.strip())
        i += 1
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", text)
        if heredoc:
            body = []
            while i < len(block.lines) and block.lines[i].strip() != heredoc.group(1):
                body.append(block.lines[i])
                i += 1
            i += 1
            heredocs.append((number + 1, "\n".join(body)))
            text = text[:heredoc.start()] + text[heredoc.end():]
        if text and not text.startswith("#"):
            lines.append((number, text))
    return lines, heredocs


def split_commands(number: int, text: str) -> list[Command]:
    """One shell line -> its commands: `$(...)` inner commands, `;`/`&&`/`|` segments, redirections dropped.

    `llmft models deprecate | archive | export ...` is an alternation of subcommands, not a pipe: a
    segment after `|` that is no shell tool continues the previous command's group.
    """
    text = re.sub(r"([\"'])\.\.\.\1", "text", text)            # --reason "..."
    text = re.sub(r"\[(--[^\]]*)\]", r"\1", text)               # [--dry-run], [--num-cpus N]
    text = re.sub(r"<[A-Za-z_][\w-]*>", "x", text)              # <JOB>
    inner = re.findall(r"\$\(([^()]*)\)", text)
    text = re.sub(r"\$\(([^()]*)\)", "x", text)
    text = re.sub(r"\$\{?\w+\}?", "x", text)                    # $VAR, ${VAR}
    out = [c for sub in inner for c in split_commands(number, sub)]
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split, lex.commenters = True, "#"
    segments, current, ops = [], [], []
    for token in lex:
        if token in (";", "&&", "||", "|", "&"):
            segments.append(current)
            ops.append(token)
            current = []
        else:
            current.append(token)
    segments.append(current)
    previous: Command | None = None
    for k, tokens in enumerate(segments):
        if not tokens:
            continue
        cmd = Command(number, text, [])
        it = iter(tokens)
        for token in it:
            if token in (">", ">>", "<", "2>"):
                cmd.stdout_to = next(it, None) if token.startswith(">") else cmd.stdout_to
            elif token == "...":
                cmd.partial = True
            else:
                cmd.argv.append(token)
        if k and ops[k - 1] == "|" and previous is not None and cmd.argv[0] not in SHELL_TOOLS \
                and program(previous)[0] == "llmft":
            cmd.argv = previous.argv[:2] + cmd.argv   # alternation: same group
            cmd.tags.add("alternation")
        if k and ops[k - 1] == "|" and "alternation" in cmd.tags:
            previous.tags.add("alternation")
        if all(re.match(r"^[A-Za-z_]\w*=", a) for a in cmd.argv):
            continue  # KEY=$(...): the assignment; its command was taken above
        out.append(cmd)
        previous = cmd
    alternation = [c for c in out if "alternation" in c.tags]
    if any(c.partial for c in alternation):
        for c in alternation:
            c.partial = True  # `deprecate | archive | ... ...`: the elision applies to each
    return out


def program(cmd: Command) -> tuple[str, list[str]]:
    """('llmft' | 'jobs' | 'demo' | 'make' | 'serve-config' | other program, its arguments)."""
    argv = list(cmd.argv)
    while argv and re.match(r"^[A-Za-z_]\w*=", argv[0]):
        argv.pop(0)  # VAR=value prefix
    if not argv:
        return "", []
    name = argv[0] if argv[0] == "." else Path(argv[0]).name
    if name == "llmft":
        return "llmft", argv[1:]
    if name.startswith("python") and argv[1:2] == ["-m"] and len(argv) > 2 and argv[2].startswith("llmft"):
        return {"llmft.jobs": "jobs", "llmft.demo": "demo"}.get(argv[2], argv[2]), argv[3:]
    if name == "ray" and "--" in argv:
        inner = Command(cmd.line, cmd.text, argv[argv.index("--") + 1:], cmd.partial)
        return program(inner)
    if name == "serve" and argv[1:2] == ["deploy"]:
        return "serve-config", argv[2:]
    return name, argv[1:]


def readme_commands() -> list[Command]:
    cmds = []
    for block in readme_blocks():
        if block.lang in SHELL_LANGS:
            for number, text in logical_lines(block)[0]:
                cmds.extend(split_commands(number, text))
    return cmds


BLOCKS = readme_blocks()
YAML_BLOCKS = [b for b in BLOCKS if b.lang in ("yaml", "yml")]
COMMANDS = readme_commands()
LLMFT_COMMANDS = [c for c in COMMANDS if program(c)[0] in ("llmft", "jobs", "demo")]


def cid(cmd: Command) -> str:
    return f"README:{cmd.line}:{' '.join(cmd.argv)[:60]}"


def test_the_readme_has_snippets_of_each_kind():
    assert len(YAML_BLOCKS) >= 3 and len(LLMFT_COMMANDS) >= 40, (len(YAML_BLOCKS), len(LLMFT_COMMANDS))
    unknown = {program(c)[0]: c.line for c in COMMANDS
               if program(c)[0] not in ("llmft", "jobs", "demo", "make", "serve-config", *OTHER_PROGRAMS)}
    assert not unknown, f"README shell lines whose program this test does not know (README line): {unknown}"


# ---------------------------------------------------------------------------------------------- specs


def _host_for(block: Block, data: dict) -> tuple[str, Path]:
    """The spec a fragment belongs in: a shipped file its first comment names, else the kind whose schema has its keys."""
    from llmft.config import SPEC_KINDS

    named = re.match(r"#\s*([\w./-]+\.ya?ml)", block.lines[0].strip()) if block.lines else None
    if named and (REPO_ROOT / named.group(1)).is_file():
        path = REPO_ROOT / named.group(1)
        return yaml.safe_load(path.read_text())["kind"], path
    kinds = [k for k, model in SPEC_KINDS.items() if set(data) <= set(model.model_fields) - {"kind"}]
    assert kinds, (f"README.md:{block.line}: yaml fragment with keys {sorted(data)} fits no spec schema "
                   f"(add it to SKIPPED_FRAGMENTS with the reason, or fix the keys)")
    # `format` is a field of dataset and curation specs: the fragment must validate in one of them
    for kind in kinds[:-1]:
        try:
            _validate_in(kind, REPO_ROOT / HOSTS[kind], data, block.line)
            return kind, REPO_ROOT / HOSTS[kind]
        except Exception:  # noqa: BLE001, S112 - the next candidate; the last one raises its own error
            continue
    return kinds[-1], REPO_ROOT / HOSTS[kinds[-1]]


def _validate_in(kind: str, host: Path, fragment: dict, line: int):
    from llmft.config import SPEC_KINDS
    from llmft.config.base import validate

    merged = {**yaml.safe_load(host.read_text()), **fragment}
    return validate(SPEC_KINDS[kind], merged, f"README.md:{line} (inside {host.relative_to(REPO_ROOT)})")


def operator_settings(block: Block, tmp_path: Path, monkeypatch) -> None:
    """Apply what a block's comments say the operator set (`# operator: VAR=value ...`, `#   secrets.yaml: {...}`)."""
    for line in block.lines:
        setting = re.match(r"#\s*operator:\s*(.*)", line)
        for pair in shlex.split(setting.group(1)) if setting else ():
            name, _, value = pair.partition("=")
            if name == "LLMFT_SECRETS_FILE":
                value = str(tmp_path / "secrets.yaml")
            monkeypatch.setenv(name, value)
        secrets = re.match(r"#\s*secrets\.yaml:\s*(.*)", line.strip())
        if secrets:
            (tmp_path / "secrets.yaml").write_text(secrets.group(1) + "\n")


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: f"README:{b.line}")
def test_yaml_block_validates_with_the_platform_schema(block, tmp_path, monkeypatch):
    from llmft.config import load_spec

    operator_settings(block, tmp_path, monkeypatch)
    data = yaml.safe_load("\n".join(block.lines))
    assert isinstance(data, dict), f"README.md:{block.line}: a yaml block must be a mapping"
    if "kind" in data:
        spec_file = tmp_path / f"README-line-{block.line}.yaml"
        spec_file.write_text("\n".join(block.lines) + "\n")
        assert load_spec(spec_file).kind == data["kind"]
        return
    if frozenset(data) in SKIPPED_FRAGMENTS:
        pytest.skip(SKIPPED_FRAGMENTS[frozenset(data)])
    kind, host = _host_for(block, data)
    spec = _validate_in(kind, host, data, block.line)
    for key, value in data.items():  # a scalar shown is the value the spec holds (no silent coercion)
        if not isinstance(value, (dict, list)):
            held = getattr(spec, key)
            assert getattr(held, "value", held) == value, f"README.md:{block.line}: {key}: {value!r} became {held!r}"
    if host.relative_to(REPO_ROOT).as_posix() not in HOSTS.values():  # named by its comment: it must match the file
        shipped = yaml.safe_load(host.read_text())
        differs = {k: (v, shipped.get(k)) for k, v in data.items() if shipped.get(k) != v}
        assert not differs, f"README.md:{block.line}: differs from {host.relative_to(REPO_ROOT)}: {differs}"


def test_documented_plugin_entry_point_group_is_the_one_llmft_reads():
    from llmft.plugins import GROUPS

    tomls = [b for b in BLOCKS if b.lang == "toml"]
    assert tomls
    for block in tomls:
        groups = tomllib.loads("\n".join(block.lines))["project"]["entry-points"]
        assert set(groups) <= set(GROUPS.values()), f"README.md:{block.line}: {sorted(groups)} vs {GROUPS}"


# ------------------------------------------------------------------------------------------- commands


# README commands known not to work as shown (keyed by the command, not the line): the README needs the fix
# named; strict, so each entry fails once the README is fixed and must then be removed. Keep this short.
RUN_GAPS: dict[str, str] = {}  # fail when run on the tiny sample
PARSE_GAPS: dict[str, str] = {}  # refused by the CLI's parser


def with_gaps(cmds: list[Command], gaps: dict[str, str]) -> list:
    return [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=gaps[" ".join(c.argv)]))
            if " ".join(c.argv) in gaps else c for c in cmds]


@pytest.fixture(scope="module")
def cli():
    import typer

    from llmft.cli.main import app

    return typer.main.get_command(app)


@pytest.fixture(scope="module")
def placeholders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("placeholders")
    for name in ("folder", "dir", "checkpoint"):
        (root / name).mkdir()
    (root / "folder" / "train.jsonl").write_text('{"prompt": "Hi", "response": "Hello"}\n')
    (root / "in.jsonl").write_text('{"id": "1", "text": "hello world"}\n')
    return {"CHECKPOINT_DIR": str(root / "checkpoint"), "FOLDER": str(root / "folder"),
            "IN.jsonl": str(root / "in.jsonl"), "DIR": str(root / "dir")}


def substitute(argv: list[str], values: dict[str, str]) -> list[str]:
    out = []
    for i, token in enumerate(argv):
        if token == "N" and i and argv[i - 1].startswith("--"):
            token = "2"
        for word in PLACEHOLDER_WORDS:
            token = re.sub(rf"(?<![\w.]){re.escape(word)}(?![\w])", values[word], token)
        out.append(token)
    return out


def click_exceptions():
    """typer 0.2x vendors click as `typer._click` (its commands raise those classes); older typer uses click."""
    try:
        from typer._click import exceptions
    except ImportError:
        exceptions = click.exceptions
    return exceptions


def parse_llmft(cli, args: list[str], partial: bool):
    """Resolve the subcommand path and parse its arguments as `llmft ARGS` would, without running it.

    Returns (path, context of the leaf command, or None for a `...` command missing a required argument).
    """
    ctx = cli.make_context("llmft", list(args))
    path: list[str] = []
    group = cli
    while True:
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, cmd, rest = group.resolve_command(ctx, rest)
        path.append(name)
        try:
            sub = cmd.make_context(name, rest, parent=ctx)
        except click_exceptions().MissingParameter:
            if not partial:
                raise
            return tuple(path), None
        if not hasattr(cmd, "resolve_command"):  # a leaf command, not a group
            return tuple(path), sub
        ctx, group = sub, cmd


def check_spec(spec: Path, overrides: list[str], kind: str, where: str):
    from llmft.config import SPEC_KINDS, load_spec

    path = spec if spec.is_absolute() else REPO_ROOT / spec
    assert path.is_file(), f"{where}: spec file {spec} does not exist"
    return load_spec(path, overrides, expect=SPEC_KINDS[kind])


@pytest.mark.parametrize("cmd", with_gaps(LLMFT_COMMANDS, PARSE_GAPS), ids=cid)
def test_command_parses_against_the_real_cli(cmd, cli, placeholders):
    kind, args = program(cmd)
    args = substitute(args, placeholders)
    where = f"README.md:{cmd.line}: {cmd.text}"
    if kind == "llmft":
        try:
            path, ctx = parse_llmft(cli, args, cmd.partial)
        except click_exceptions().UsageError as exc:
            refused = exc.format_message()
        else:
            refused = None
        assert refused is None, f"{where}\n  llmft {' '.join(args)}: {refused}"
        if ctx is not None and SPEC_KIND.get(path) and ctx.params.get("spec"):
            check_spec(Path(ctx.params["spec"]), list(ctx.params.get("overrides") or []), SPEC_KIND[path], where)
    elif kind == "jobs":
        from llmft.jobs.__main__ import parser
        from llmft.jobs.kinds import KINDS

        try:
            ns = parser().parse_intermixed_args(args)
        except SystemExit:
            ns = None
        assert ns is not None, f"{where}\n  python -m llmft.jobs {' '.join(args)}: refused by the entrypoint's parser"
        if ns.spec is not None:
            check_spec(ns.spec, ns.overrides, KINDS[ns.kind].spec_type.model_fields["kind"].default, where)
    elif kind == "demo":
        from llmft.demo.__main__ import parser as demo_parser

        try:
            demo_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}\n  python -m llmft.demo {' '.join(args)}: refused by the demo's parser")
    else:
        pytest.fail(f"{where}: no parser known for `python -m {kind}` commands")


def test_every_gap_names_a_command_still_in_the_readme():
    """A fixed README line changes the command: its entry above must go (strict xfail covers unchanged lines)."""
    shown = {" ".join(c.argv) for c in LLMFT_COMMANDS}
    stale = [k for k in (*PARSE_GAPS, *RUN_GAPS) if k not in shown]
    assert not stale, f"no longer in the README, remove from PARSE_GAPS/RUN_GAPS: {stale}"


# The documented refusals (`error: ...` lines of untagged blocks), each reproduced: (spec, overrides, a change
# to the spec's YAML written to the file the message names).
DOCUMENTED_ERRORS = {
    "error: jobs/specs/train-lora.yaml: invalid spec: lora.r: Input should be greater than or equal to 1":
        ("jobs/specs/train-lora.yaml", ["lora.r=0"], None),
    "error: spec.yaml: invalid spec: split: Value error, train + validation + test must sum to 1 (got 1.1)":
        ("jobs/specs/curate-tickets.yaml", [], {"split": {"train": 0.9, "validation": 0.1, "test": 0.1}}),
}


def test_documented_spec_errors_are_the_loaders(tmp_path, monkeypatch):
    from llmft.config import load_spec
    from llmft.errors import SpecError

    shown = [(b.line + i, ln.strip()) for b in BLOCKS if not b.lang for i, ln in enumerate(b.lines)
             if ln.startswith("error: ") and "invalid spec" in ln]
    assert shown and {ln for _, ln in shown} <= set(DOCUMENTED_ERRORS), (
        f"README error lines with no reproduction in DOCUMENTED_ERRORS: {[x for x in shown if x[1] not in DOCUMENTED_ERRORS]}")
    for line, text in shown:
        spec, overrides, change = DOCUMENTED_ERRORS[text]
        path = REPO_ROOT / spec
        if change is not None:
            named = text.split(": ")[1]
            monkeypatch.chdir(tmp_path)
            (tmp_path / named).write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **change}))
            path = Path(named)
        else:
            monkeypatch.chdir(REPO_ROOT)
            path = Path(spec)
        with pytest.raises(SpecError) as refused:
            load_spec(path, overrides)
        assert f"error: {refused.value}" == text, f"README.md:{line}: the loader says `error: {refused.value}`"


def test_layout_blocks_name_files_that_exist():
    """Untagged layout blocks (`dir/  file.py, file.py`): every path and module they name exists."""
    roots = (REPO_ROOT, REPO_ROOT / "platform" / "llmft")
    layouts = [b for b in BLOCKS if not b.lang and re.match(r"^[\w.-]+(/[\w.-]*)*\s{2,}", b.lines[0])]
    assert len(layouts) >= 2
    missing = []
    for block in layouts:
        folder = Path(".")
        for i, line in enumerate(block.lines):
            if not line.startswith(" "):
                head = line.split()[0]
                if not any((r / head).exists() for r in roots):
                    missing.append((block.line + i, head))
                folder = Path(head) if head.endswith("/") else Path(head).parent
                line = line[len(head):]
            for name in re.findall(r"(?<![\w/.`])(\w+\.py)\b", line):
                if not any((r / folder / name).exists() for r in roots):
                    missing.append((block.line + i, str(folder / name)))
    assert not missing, f"README layout names what does not exist (README line, path): {missing}"


def test_settings_shown_are_read_by_the_platform():
    """`LLMFT_*=...` lines of untagged blocks name settings the platform reads."""
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "platform" / "llmft").rglob("*.py"))
    shown = [(b.line + i, m.group(1)) for b in BLOCKS if not b.lang for i, ln in enumerate(b.lines)
             for m in [re.match(r"^\s*(LLMFT_\w+)=", ln)] if m]
    assert shown
    assert not [x for x in shown if x[1] not in source], [x for x in shown if x[1] not in source]


def test_make_targets_exist():
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+)\s*:", makefile, re.M))
    named = [(c.line, t) for c in COMMANDS if program(c)[0] == "make" for t in program(c)[1]]
    assert named and not [x for x in named if x[1] not in targets], [x for x in named if x[1] not in targets]


def test_serve_configs_named_exist():
    named = [(c.line, a[0]) for c in COMMANDS if program(c)[0] == "serve-config" for a in [program(c)[1]]]
    assert named
    for line, path in named:
        assert (REPO_ROOT / path).is_file(), f"README.md:{line}: {path} does not exist"
        assert "applications" in yaml.safe_load((REPO_ROOT / path).read_text())


def heredoc_env_reads() -> list[tuple[int, str, bool]]:
    """(README line, NAME, passed) for each `os.environ["NAME"]` a heredoc reads: passed when the block exports
    NAME before it or the command running the heredoc sets it (`NAME=... python - <<'PY'`)."""
    out = []
    for block in (b for b in BLOCKS if b.lang in SHELL_LANGS):
        lines, heredocs = logical_lines(block)
        for start, body in heredocs:
            runner = split_commands(*[(n, t) for n, t in lines if n < start][-1])[-1].argv  # runs the heredoc
            prefix = [a.split("=", 1)[0] for a in runner[:next(i for i, a in enumerate(runner) if "=" not in a)]]
            for name in re.findall(r"os\.environ\[['\"](\w+)['\"]\]", body):
                exported = name in prefix or any(re.search(rf"\bexport\s+{name}\b", t) for n, t in lines if n < start)
                out.append((start, name, exported))
    return out


HEREDOC_GAPS: dict[str, str] = {}  # strict: fails once fixed


@pytest.mark.parametrize("read", [pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=HEREDOC_GAPS[r[1]]))
                                  if r[1] in HEREDOC_GAPS else r for r in heredoc_env_reads()],
                         ids=lambda r: f"README:{r[0]}:{r[1]}")
def test_heredoc_environment_reaches_python(read):
    line, name, passed = read
    assert passed, f"README.md:{line}: the heredoc reads os.environ[{name!r}], which nothing before it exports"


def test_heredoc_python_compiles():
    bodies = [h for b in BLOCKS if b.lang in SHELL_LANGS for h in logical_lines(b)[1]]
    assert bodies
    for line, body in bodies:
        ast.parse(body, filename=f"README.md:{line}")


# ------------------------------------------------------------------------------ bring your own data


def script_commands(path: Path = BYOD_SCRIPT) -> list[Command]:
    """The script's llmft commands, its variables written as the README writes them."""
    cmds = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if "$LLMFT " not in text:
            continue
        text = text.replace("$LLMFT ", "llmft ").replace('"$SPECS/', '"jobs/byod/').replace("$DATA_DIR", "FOLDER")
        cmds.extend(c for c in split_commands(number, text) if program(c)[0] == "llmft")
    return cmds


def test_bring_your_own_data_section_is_the_script():
    """The README block's llmft commands are the script's, in order; the script may only add port settings."""
    readme = [c for c in COMMANDS if program(c)[0] == "llmft" and c.line in _section_lines("Bring your own data")]
    script = script_commands()
    assert len(readme) >= 10 and len(readme) == len(script), (
        [" ".join(c.argv) for c in readme], [" ".join(c.argv) for c in script])
    for r, s in zip(readme, script):
        r_args, s_args = program(r)[1], program(s)[1]
        extra = [a for a in s_args if a not in r_args]
        assert [a for a in s_args if a not in extra] == r_args and all(
            re.match(r"^(http\.port|dashboard_url)=", a) for a in extra), (
            f"README.md:{r.line}: `llmft {' '.join(r_args)}` is not {BYOD_SCRIPT.name}:{s.line}: "
            f"`llmft {' '.join(s_args)}`")


def _section_lines(title: str) -> range:
    text = README.read_text().splitlines()
    start = next(i for i, line in enumerate(text, 1) if line.strip() == f"## {title}")
    end = next((i for i, line in enumerate(text, 1) if i > start and line.startswith("## ")), len(text))
    return range(start, end)


# --------------------------------------------------------------------------- run on a tiny sample

# Commands run for real (no Ray), in this order (README order within each); the rest are parsed only, for a reason.
RUN = [("data", "generate-sample"), ("tenants", "create"), ("data", "register"), ("data", "verify"),
       ("data", "curate", "--dry-run"), ("keys", "create"), ("audit", "log"), ("audit", "head"), ("audit", "verify"),
       ("audit", "export"), ("cluster", "status"), ("train", "submit", "--dry-run"), ("jobs", "training", "--dry-run")]
ON_RAY = "runs on Ray (the integration and e2e tiers run it)"
NEEDS_RUN_OUTPUT = "needs a trained job or a registered version, which only the Ray-run steps make"
NOT_RUN = {
    ("data", "curate"): ON_RAY, ("data", "dedupe"): ON_RAY, ("data", "erase"): ON_RAY, ("train", "submit"): ON_RAY,
    ("jobs", "curation"): ON_RAY, ("jobs", "training"): ON_RAY,
    ("serve", "up"): ON_RAY, ("serve", "down"): ON_RAY, ("deploy", "create"): ON_RAY, ("deploy", "traffic"): ON_RAY,
    ("deploy", "rollback"): ON_RAY, ("cluster", "up"): ON_RAY,
    ("cluster", "down"): ON_RAY, ("eval", "run"): ON_RAY,
    ("models", "build-tiny"): "pretrains for ~25 s; a 1-step stand-in of the same build is made instead",
    **{("train", c): NEEDS_RUN_OUTPUT for c in ("status", "events", "checkpoints")},
    **{("models", c): NEEDS_RUN_OUTPUT for c in ("register", "verify", "lineage", "promote", "alias-history",
                                                 "deprecate", "archive", "retention", "export")},
}


def run_key(cmd: Command) -> tuple[str, ...]:
    kind, args = program(cmd)
    words = [a for a in args if not a.startswith("-")][: 1 if kind == "jobs" else 2]
    key = (kind if kind != "llmft" else words.pop(0), *words)
    return (*key, "--dry-run") if "--dry-run" in args and key in NEEDS_DRY_RUN else key


def test_every_command_is_run_or_has_a_reason_not_to_be():
    unclassified = {run_key(c): c.line for c in LLMFT_COMMANDS if run_key(c) not in RUN and run_key(c) not in NOT_RUN}
    assert not unclassified, f"README commands neither run here nor listed in NOT_RUN (README line): {unclassified}"


def seed_stand_ins(store, home: Path) -> None:
    """What the Ray-run steps would leave: a 1-step `tiny` base and curated snapshots for the training specs."""
    from llmft.models.loading import builtin_dir, load_tokenizer
    from llmft.models.tiny import build_tiny_base
    from tests.train_fixtures import write_curated_snapshot

    base = build_tiny_base(builtin_dir("tiny"), pretrain_steps=1, vocab_size=512, hidden_size=32, num_layers=1,
                           num_heads=2, num_kv_heads=1, intermediate_size=64)
    tokenizer = load_tokenizer(Path(base["path"]))
    snap = write_curated_snapshot(home / "stand-in-curated", tokenizer, n_train=24, n_val=8)
    for spec in ("jobs/specs/train-lora.yaml", "jobs/byod/train.yaml"):
        dataset = yaml.safe_load((REPO_ROOT / spec).read_text())["dataset"]
        store.add_snapshot(tenant="acme", dataset=dataset, snapshot_id=f"stand-in-{dataset}", uri=str(snap),
                           classification="internal", row_count=32, kind="curated", actor="readme-test")


@pytest.fixture(scope="module")
def sample_session(tmp_path_factory, placeholders):
    """The README's no-Ray commands run for real, in RUN order, in one fresh LLMFT_HOME: {README line: outcome}."""
    import contextlib
    import io

    from typer.testing import CliRunner

    from llmft.cli.main import app
    from llmft.jobs.__main__ import main as jobs_main

    root = tmp_path_factory.mktemp("readme-session")
    work, home = root / "work", root / "home"
    work.mkdir()
    for name in ("jobs", "serve_apps"):
        (work / name).symlink_to(REPO_ROOT / name)
    todo = sorted((c for c in LLMFT_COMMANDS if run_key(c) in RUN), key=lambda c: (RUN.index(run_key(c)), -len(c.argv)))
    outcomes, tenants, seeded = {}, set(), False
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMFT_HOME", str(home))
        for var in ("LLMFT_DB_URL", "LLMFT_MLFLOW_URI", "LLMFT_STORAGE", "LLMFT_API_URL", "RAY_ADDRESS",
                    "LLMFT_RAY_ADDRESS"):
            mp.delenv(var, raising=False)
        mp.chdir(work)
        runner = CliRunner()
        for cmd in todo:
            kind, args = program(cmd)
            args = substitute(args, placeholders)
            if run_key(cmd) == ("tenants", "create"):
                if args[2] in tenants:
                    outcomes[cmd.line] = {"skipped": f"tenant {args[2]} was created by the longer form above"}
                    continue
                tenants.add(args[2])
            if not seeded and run_key(cmd)[-1] == "--dry-run":  # the tenant exists by now (RUN order)
                from llmft.store import Store

                store = Store()
                seed_stand_ins(store, home)
                store.close()
                seeded = True
            if kind == "jobs":
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = jobs_main(args)
                outcomes[cmd.line] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
            else:
                res = runner.invoke(app, args)
                outcomes[cmd.line] = {"code": res.exit_code, "stdout": res.stdout, "stderr": res.stderr,
                                      "exception": None if isinstance(res.exception, SystemExit) else res.exception}
                if cmd.stdout_to:
                    (work / cmd.stdout_to).write_text(res.stdout)
            outcomes[cmd.line]["argv"] = args
    import sys

    ray_started = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    return {"outcomes": outcomes, "work": work, "ray_started": ray_started}


RUN_COMMANDS = [c for c in LLMFT_COMMANDS if run_key(c) in RUN]


@pytest.mark.parametrize("cmd", with_gaps(RUN_COMMANDS, RUN_GAPS), ids=cid)
def test_command_runs_on_the_tiny_sample(cmd, sample_session):
    got = sample_session["outcomes"][cmd.line]
    if "skipped" in got:
        pytest.skip(got["skipped"])
    out = got["stdout"] + got["stderr"]
    assert got["code"] == 0 and got.get("exception") is None, (
        f"README.md:{cmd.line}: `{' '.join(got['argv'])}` exited {got['code']}: {out[-1500:]} {got.get('exception')!r}")
    assert "Traceback" not in out, f"README.md:{cmd.line}: {out[-2000:]}"


def test_the_sample_session_made_what_the_readme_says(sample_session):
    """Spot checks of the outputs: the sample's files, the anchor, the export, the dry runs' plans; no Ray."""
    work, outcomes = sample_session["work"], sample_session["outcomes"]
    assert (work / "data" / "sample" / "tickets.jsonl").is_file()
    assert (work / "anchor.json").is_file() and (work / "audit.jsonl").read_text().strip()
    planned = [o["stdout"] for o in outcomes.values() if "planned:" in o.get("stdout", "")]
    assert planned, "no dry run printed its `planned: N steps ...` line"
    status = next(o["stdout"] for o in outcomes.values() if o.get("argv", [])[:2] == ["cluster", "status"])
    assert status.startswith("no cluster: each command starts a private local Ray"), status
    assert not sample_session["ray_started"]
    assert len(RUN_COMMANDS) >= 12, len(RUN_COMMANDS)
