"""Maps the top-level component folders into the otelml package.

Components live in top-level folders, like collector-contrib's, but are
installed inside the package: ``receivers/otlp`` -> ``otelml.receivers.otlp``.
pyproject.toml cannot compute that mapping, so it is done here.
"""

from setuptools import find_packages, setup

COMPONENT_FOLDERS = ("receivers", "processors", "exporters", "extensions", "connectors")

packages = find_packages(include=["otelml", "otelml.*"])
for folder in COMPONENT_FOLDERS:
    packages += [f"otelml.{name}" for name in find_packages(include=[folder, f"{folder}.*"])]
# The example configs of config/ are installed too, as otelml.examples: `otelml demo` runs
# config/demo.yaml from any directory, and config/ stays their one source.
packages.append("otelml.examples")

setup(
    packages=packages,
    package_dir={"otelml": "otelml", "otelml.examples": "config", **{f"otelml.{folder}": folder for folder in COMPONENT_FOLDERS}},
    # Pages that extensions serve (the zpages live page), and the example configs.
    package_data={"otelml.extensions.zpages": ["*.html"], "otelml.examples": ["*.yaml"]},
)
