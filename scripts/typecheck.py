"""Type-check otelml and its components with mypy, as they are installed: ``otelml.receivers.otlp`` is ``receivers/otlp``.

setup.py maps the component folders into the package; mypy cannot follow that
mapping, so it checks a view of the package made of links to the folders,
and the paths it reports are turned back into the repository's.
Run from anywhere: ``python scripts/typecheck.py``; exits with mypy's status.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPONENT_FOLDERS = ("receivers", "processors", "exporters", "extensions", "connectors")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="otelml-typecheck-") as view:
        package = Path(view) / "otelml"
        package.mkdir()
        for path in (REPO / "otelml").iterdir():
            (package / path.name).symlink_to(path)
        for folder in COMPONENT_FOLDERS:
            (package / folder).symlink_to(REPO / folder)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--config-file",
                str(REPO / "pyproject.toml"),
                "--cache-dir",
                str(REPO / ".mypy_cache"),
                "otelml",
            ],
            cwd=view,
            capture_output=True,
            text=True,
        )
    for folder in COMPONENT_FOLDERS:
        result.stdout = result.stdout.replace(f"otelml/{folder}/", f"{folder}/")
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
