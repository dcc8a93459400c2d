"""The example configs, installed with otelml as ``otelml.examples`` (see setup.py).

This folder is their one source; being a package is what lets ``otelml demo``
find ``demo.yaml`` from any directory, in an editable install or a wheel.
"""
