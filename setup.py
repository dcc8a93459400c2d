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

setup(
    packages=packages,
    package_dir={"otelml": "otelml", **{f"otelml.{folder}": folder for folder in COMPONENT_FOLDERS}},
    # Pages that extensions serve (the zpages live page).
    package_data={"otelml.extensions.zpages": ["*.html"]},
)
