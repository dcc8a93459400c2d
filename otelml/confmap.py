"""Raw configuration maps: YAML files, ``${...}`` expansion, merging and ``--set``.

Expansion follows the collector's confmap: ``${env:NAME}``,
``${env:NAME:-default}``, ``${file:path}`` and ``$$`` for a literal ``$``.
A value that is one reference and nothing else takes the YAML type of what
it expands to (``${env:PORT}`` with PORT=4317 is the integer 4317).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

_REFERENCE = re.compile(r"\$\$|\$\{([a-zA-Z][a-zA-Z0-9_]*):([^}]*)\}")


class ConfigError(Exception):
    """Every problem found in a configuration, one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load_files(paths: Sequence[str | Path]) -> dict:
    """Read and merge YAML files in order."""
    merged: dict = {}
    problems = []
    for path in paths:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as error:
            problems.append(f"{path}: cannot read: {error.strerror}")
            continue
        except yaml.YAMLError as error:
            problems.append(f"{path}: invalid YAML: {error}")
            continue
        if not isinstance(document, dict):
            problems.append(f"{path}: the top level must be a map")
            continue
        merged = merge(merged, document)
    if problems:
        raise ConfigError(problems)
    return merged


def merge(base: Any, override: Any) -> Any:
    """Maps merge key by key; anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            result[key] = merge(base.get(key), value) if key in base else value
        return result
    return override


def apply_set(config: dict, assignment: str) -> dict:
    """Apply ``--set a.b.c=value`` (or ``a::b::c=value``); the value is parsed as YAML."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise ConfigError([f"--set {assignment!r}: expected key=value"])
    keys = path.split("::") if "::" in path else path.split(".")
    value = yaml.safe_load(raw) if raw else None
    for key in reversed(keys):
        value = {key: value}
    return merge(config, value)


def expand(node: Any, path: str = "", problems: list[str] | None = None, unset: dict[str, str] | None = None) -> Any:
    """Resolve ``${...}`` references in every string of ``node``.

    ``${env:NAME}`` of a variable that is not set, without a default, becomes
    an empty string, as in the collector; pass ``unset`` to learn where
    (``{path: reference}``), so that a setting that cannot be empty can say
    why it is (:func:`explain_unset`).
    """
    top = problems is None
    problems = [] if problems is None else problems
    result: Any
    if isinstance(node, dict):
        result = {key: expand(value, f"{path}::{key}" if path else str(key), problems, unset) for key, value in node.items()}
    elif isinstance(node, list):
        result = [expand(value, f"{path}::{i}", problems, unset) for i, value in enumerate(node)]
    elif isinstance(node, str):
        result = _expand_string(node, path, problems, unset)
    else:
        result = node
    if top and problems:
        raise ConfigError(problems)
    return result


def explain_unset(problems: list[str], unset: dict[str, str]) -> list[str]:
    """``problems`` with each one about a setting that used an unset variable saying so.

    >>> explain_unset(["receivers::otlp::endpoint: invalid endpoint ''"], {"receivers::otlp::endpoint": "${env:EP}"})
    ["receivers::otlp::endpoint: invalid endpoint '' (${env:EP} is not set and has no default)"]
    """
    explained = []
    for problem in problems:
        references = [reference for path, reference in unset.items() if problem.startswith(f"{path}:")]
        explained.append(
            f"{problem} ({', '.join(references)} {'is' if len(references) == 1 else 'are'} not set and "
            f"{'has' if len(references) == 1 else 'have'} no default)"
            if references
            else problem
        )
    return explained


def _expand_string(text: str, path: str, problems: list[str], unset: dict[str, str] | None) -> Any:
    whole = _REFERENCE.fullmatch(text)
    if whole and whole.group(0) != "$$":
        resolved = _resolve(whole.group(0), whole.group(1), whole.group(2), path, problems, unset)
        if resolved is None:
            return text
        try:
            return yaml.safe_load(resolved) if resolved.strip() else resolved
        except yaml.YAMLError:
            return resolved

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        resolved = _resolve(match.group(0), match.group(1), match.group(2), path, problems, unset)
        return match.group(0) if resolved is None else resolved

    return _REFERENCE.sub(substitute, text)


def _resolve(text: str, scheme: str, reference: str, path: str, problems: list[str], unset: dict[str, str] | None) -> str | None:
    where = f"{path}: " if path else ""
    if scheme == "env":
        name, sep, default = reference.partition(":-")
        if name in os.environ:
            return os.environ[name]
        if not sep and unset is not None:
            unset[path] = text
        return default if sep else ""
    if scheme == "file":
        try:
            return Path(reference).read_text().rstrip("\n")
        except OSError as error:
            problems.append(f"{where}cannot read ${{file:{reference}}}: {error.strerror}")
            return None
    problems.append(f"{where}unknown reference scheme {scheme!r} (known: env, file)")
    return None
