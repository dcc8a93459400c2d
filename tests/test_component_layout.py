"""Every built-in component follows the collector-contrib layout: a README and testdata that validate."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from otelml.component import ComponentID
from otelml.configmodel import nested_problems
from otelml.registry import Registry

FACTORIES = Registry.default().all()


def component_folder(factory) -> Path:
    module = importlib.import_module(factory.create.__module__)
    return Path(module.__file__).parent


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f"{f.kind.value}/{f.type}")
def test_component_has_a_readme_and_valid_testdata(factory):
    folder = component_folder(factory)
    assert (folder / "README.md").is_file(), f"{folder} has no README.md"
    documents = sorted((folder / "testdata").glob("*.yaml"))
    assert documents, f"{folder}/testdata has no example config"
    examples = 0
    for path in documents:
        section = (yaml.safe_load(path.read_text()) or {}).get(factory.kind.section, {})
        for key, settings in section.items():
            if ComponentID.parse(key).type != factory.type:
                continue
            try:
                config = factory.config_class.model_validate(settings or {})
            except ValidationError as error:
                pytest.fail(f"{path}: {key}: {error}")
            assert nested_problems(config) == [], f"{path}: {key}"
            examples += 1
    assert examples, f"no example of {factory.type} in {folder}/testdata"
