"""Shared CLI plumbing: `--json` output, one-line errors, spec loading with overrides."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer

from llmft.errors import LlmftError

F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
DryRunOpt = typer.Option(False, "--dry-run", help="Validate spec and policy, print the plan, change nothing.")
SpecOpt = typer.Option(..., "--spec", exists=False, help="Spec YAML file.")
OverridesArg = typer.Argument(None, help="Overrides as KEY.PATH=VALUE.", show_default=False)
ActorOpt = typer.Option(None, "--actor", envvar="LLMFT_ACTOR", help="Who is acting (recorded in the audit log).")


def actor_name(actor: str | None) -> str:
    import getpass

    return actor or f"cli:{getpass.getuser()}"


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print `data` as JSON with --json, else the human line (or a YAML-ish dump)."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif human is not None:
        typer.echo(human)
    else:
        import yaml

        typer.echo(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False).rstrip())


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def debugging() -> bool:
    """`llmft --debug ...` (or LLMFT_DEBUG=1): let tracebacks through instead of one-line errors."""
    import os

    return os.environ.get("LLMFT_DEBUG", "") not in ("", "0")


def one_line(exc: BaseException) -> str:
    """An unexpected error as one line: its type and the last line of its message (Ray's run to pages)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else 'no message'}"[:500]


def handles_errors(fn: F) -> F:
    """Turn every failure into one clear line on stderr and a non-zero exit; `--debug` shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except LlmftError as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"{exc.filename or exc}: no such file")
        except UnicodeDecodeError as exc:
            fail(f"not UTF-8 (invalid byte at offset {exc.start})")
        except ConnectionError as exc:
            if debugging():
                raise
            fail(f"cannot reach the Ray cluster or service: {one_line(exc)} (is it running? `llmft --debug ...` "
                 f"shows the traceback)")
        except Exception as exc:  # noqa: BLE001 - no traceback reaches a user unless asked for
            if debugging():
                raise
            fail(f"{one_line(exc)} (rerun as `llmft --debug ...` for the traceback)")

    return wrapper  # type: ignore[return-value]


def load_cli_spec(path: Path, overrides: list[str] | None, expect: type) -> Any:
    from llmft.config import load_spec

    return load_spec(path, overrides or [], expect=expect)


def exit_with_stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    raise typer.Exit(1)
