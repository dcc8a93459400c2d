"""Config examples in the READMEs are real: every full config in a ```yaml block validates.

A full config is a block with receivers, exporters and service pipelines.
Certificate and token files named in examples exist only where otelml is
deployed, so "cannot read" problems are the one kind allowed.
"""

from __future__ import annotations

import re

import pytest
import yaml

from otelml.config import parse
from otelml.confmap import ConfigError, expand
from otelml.registry import Registry
from tests.conftest import REPO

READMES = [REPO / "README.md", *sorted(REPO.glob("*/*/README.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def full_configs():
    for path in READMES:
        for index, block in enumerate(BLOCK.findall(path.read_text())):
            document = yaml.safe_load(block)
            if (
                isinstance(document, dict)
                and {"receivers", "exporters"} <= document.keys()
                and "pipelines" in document.get("service", {})
            ):
                yield pytest.param(document, id=f"{path.relative_to(REPO)}#{index}")


@pytest.mark.parametrize("document", list(full_configs()))
def test_readme_config_validates(document):
    try:
        parse(expand(document), Registry.default())
    except ConfigError as error:
        problems = [p for p in error.problems if "cannot read" not in p]
        assert problems == []
