"""Settings of the ``drain`` processor: the collector-contrib ``drain`` processor's, plus key and checkpoint."""

from __future__ import annotations

from otelml import conventions
from otelml.checkpoint import CheckpointConfig
from otelml.configmodel import ComponentConfig
from otelml.pdata import Signal
from otelml.references import check_signal, parse_key


class DrainConfig(ComponentConfig):
    """See the component README for what each setting does and why its default is what it is."""

    unsupported_keys = {
        "template_attribute": f"the template is always written as {conventions.TEMPLATE} (and its id as "
        f"{conventions.TEMPLATE_ID}), so that the components after this one can rely on them",
        "masking_rules": "variables (numbers, hex, addresses, paths, UUIDs, host names) are masked without rules; see the README",
        "parameter_key_prefix": "masked values are not written as attributes",
        "emit_wildcards": "the values at <*> positions are not written as attributes",
        "wildcards_attribute": "the values at <*> positions are not written as attributes",
        "storage": "templates survive a restart in a checkpoint of their own: set checkpoint::path and checkpoint::key",
        "save_interval": "set checkpoint::interval",
    }

    tree_depth: int = 4
    merge_threshold: float = 0.88
    max_node_children: int = 100
    max_clusters: int = 10000
    extra_delimiters: list[str] = []
    body_field: str = ""
    seed_templates: list[str] = []
    seed_logs: list[str] = []
    warmup_min_clusters: int = 0
    key: list[str] = ["resource.service.name"]
    checkpoint: CheckpointConfig = CheckpointConfig()

    def validate_config(self) -> list[str]:
        problems = []
        if self.tree_depth < 3:
            problems.append(f"tree_depth: must be at least 3, got {self.tree_depth}")
        if not 0.0 <= self.merge_threshold <= 1.0:
            problems.append(f"merge_threshold: must be in [0.0, 1.0], got {self.merge_threshold}")
        if self.max_node_children < 1:
            problems.append(f"max_node_children: must be at least 1, got {self.max_node_children}")
        if self.max_clusters < 0:
            problems.append(f"max_clusters: must not be negative (0: no limit), got {self.max_clusters}")
        if self.warmup_min_clusters < 0:
            problems.append(
                f"warmup_min_clusters: must not be negative (0: annotate from the first record), got {self.warmup_min_clusters}"
            )
        problems += [
            f"extra_delimiters::{index}: must not be empty"
            for index, delimiter in enumerate(self.extra_delimiters)
            if not delimiter
        ]
        for index, text in enumerate(self.key):
            try:
                parse_key(text)
            except ValueError as error:
                problems.append(f"key::{index}: {error}")
        return problems

    def validate_signal(self, signal: Signal) -> list[str]:
        problems = []
        for index, text in enumerate(self.key):
            try:
                check_signal(parse_key(text), signal)
            except ValueError as error:
                problems.append(f"key::{index}: {error}")
        return problems
