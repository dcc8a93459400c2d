"""The ``drain`` processor: every log record gets its template and the template's id.

One pass over a batch: each resource's (and scope's) part of the key is
read once, each record's body text goes to its key's parse tree
(:mod:`.drain`), and the two attributes are appended in one
``MergeFromString`` of bytes encoded once per template. Templates and their
trees survive a restart in a signed checkpoint of their own
(:mod:`otelml.checkpoint`).
"""

from __future__ import annotations

import hashlib
import json

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otelml import conventions
from otelml.checkpoint import Checkpointer
from otelml.component import Component, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.pdata import Batch, Signal, scopes
from otelml.processors.drain import masking, metadata
from otelml.processors.drain.config import DrainConfig
from otelml.processors.drain.drain import Cluster, Drain
from otelml.references import any_value_text, check_signal, find_attributes, parse_key, record_text

MAGIC = b"OTELML-DRAIN-CHECKPOINT/1\n"
_WRITTEN = frozenset({conventions.TEMPLATE, conventions.TEMPLATE_ID})


def encode_attributes(cluster: Cluster) -> bytes:
    """The template attributes as the bytes of a LogRecord that holds only them: merged, they append."""
    return LogRecord(
        attributes=[
            KeyValue(key=conventions.TEMPLATE, value=AnyValue(string_value=cluster.template)),
            KeyValue(key=conventions.TEMPLATE_ID, value=AnyValue(string_value=cluster.template_id)),
        ]
    ).SerializeToString()


class DrainProcessor(Component):
    """See the component README for every setting, attribute and metric."""

    mutates_data = True

    def __init__(self, settings: CreateSettings, config: DrainConfig, signal: Signal, next_consumer: Consumer):
        self.settings = settings
        self.config = config
        self.signal = signal
        self.next_consumer = next_consumer
        self.logger = settings.logger
        key = [parse_key(text) for text in config.key]
        for reference in key:
            check_signal(reference, signal)
        # Key parts are read outer first: resource, scope, then record.
        self.resource_refs = [r for r in key if r.level == "resource"]
        self.scope_refs = [r for r in key if r.level == "scope"]
        self.record_refs = [r for r in key if r.level == "record"]
        self.record_attributes = frozenset(r.attribute for r in self.record_refs if r.attribute)
        self.miner = Drain(
            config.tree_depth,
            config.merge_threshold,
            config.max_node_children,
            config.max_clusters,
            tuple(config.extra_delimiters),
            tuple(config.seed_templates),
            tuple(config.seed_logs),
        )
        self.annotating = config.warmup_min_clusters == 0
        self.fingerprint = self._fingerprint()
        self.checkpointer = Checkpointer(config.checkpoint, MAGIC, "a drain checkpoint", self.logger)
        telemetry, name = settings.telemetry, str(settings.id)
        self._annotated = telemetry.metric(metadata.ANNOTATED).labels(name)
        self._unannotated = telemetry.metric(metadata.UNANNOTATED).labels(name)
        self._clusters = telemetry.metric(metadata.CLUSTERS_ACTIVE).labels(name)
        self._evicted = telemetry.metric(metadata.EVICTED).labels(name)
        self._reported_evictions = 0

    def _fingerprint(self) -> str:
        """What a checkpoint must match to be reused: the settings that shape the trees, and the masking."""
        shaping = self.config.model_dump(mode="json", include={"tree_depth", "max_node_children", "extra_delimiters", "key"})
        shaping["masking"] = masking.SIGNATURE
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()

    # Lifecycle -------------------------------------------------------------

    async def start(self, host: Host) -> None:
        payload = self.checkpointer.load()
        if payload is None:
            if self.checkpointer.path is not None:
                self.logger.info("no checkpoint at %s yet; starting with no templates", self.checkpointer.path)
        else:
            self._restore(payload)
        self.checkpointer.start(self.dump)

    async def shutdown(self) -> None:
        await self.checkpointer.stop(self.dump)

    def dump(self) -> bytes:
        """The checkpoint payload: every template of every key, and whether warmup is over."""
        return json.dumps(
            {"fingerprint": self.fingerprint, "annotating": self.annotating, "clusters": self.miner.snapshot()}
        ).encode()

    def _restore(self, payload: bytes) -> None:
        state = json.loads(payload)
        if state["fingerprint"] != self.fingerprint:
            self.logger.warning(
                "checkpoint %s was written with other tree settings or masking; starting afresh", self.checkpointer.path
            )
            return
        self.miner.restore(state["clusters"])
        self.annotating = self.annotating or state["annotating"]
        self._clusters.set(len(self.miner))
        self.logger.info("restored %d templates from %s", len(self.miner), self.checkpointer.path)

    # Data --------------------------------------------------------------------

    async def consume(self, batch: Batch) -> None:
        annotated = unannotated = 0
        resource_entry, outer = None, ()
        for entry, scope_entry, log_records in scopes(batch):
            if entry is not resource_entry:
                resource_entry, outer = entry, self._resource_part(entry.resource)
            scope = scope_entry.scope
            key = outer + tuple(scope.name if r.field == "scope.name" else scope.version for r in self.scope_refs)
            done, skipped = self._annotate(log_records, key)
            annotated += done
            unannotated += skipped
        self._annotated.inc(annotated)
        self._unannotated.inc(unannotated)
        self._clusters.set(len(self.miner))
        if self.miner.evicted != self._reported_evictions:
            self._evicted.inc(self.miner.evicted - self._reported_evictions)
            self._reported_evictions = self.miner.evicted
        await self.next_consumer.consume(batch)

    def _annotate(self, records, key: tuple) -> tuple[int, int]:
        """Learn and annotate one scope's records; returns how many were annotated and how many not."""
        miner, text_of = self.miner, self._text
        tree = None if self.record_refs else miner.tree(key)
        annotated = 0
        for record in records:
            text = record.body.string_value or text_of(record.body)
            if self.record_refs:
                found = find_attributes(record.attributes, self.record_attributes)
                tree = miner.tree(key + tuple(record_text(record, r, found) for r in self.record_refs))
            assert tree is not None  # the scope's, or the record's just above
            cluster = miner.add_to(tree, text)
            if cluster is None:
                continue
            if not self.annotating:
                self.annotating = len(miner) >= self.config.warmup_min_clusters
                if not self.annotating:
                    continue
            attributes = record.attributes
            if len(attributes) and any(kv.key in _WRITTEN for kv in attributes):
                # Annotated before (by an agent's drain processor, say): replace, never repeat a key.
                kept = [kv for kv in attributes if kv.key not in _WRITTEN]
                del attributes[:]
                attributes.extend(kept)
            if cluster.attributes is None:
                cluster.attributes = encode_attributes(cluster)
            record.MergeFromString(cluster.attributes)
            annotated += 1
        return annotated, len(records) - annotated

    def _resource_part(self, resource) -> tuple:
        if not self.resource_refs:
            return ()
        found = find_attributes(resource.attributes, frozenset(r.attribute for r in self.resource_refs))
        return tuple(any_value_text(found[r.attribute]) if r.attribute in found else "" for r in self.resource_refs)

    def _text(self, body) -> str:
        """The text of a body that is not a plain string.

        A map body's ``body_field``, else its message or its fields' names,
        as for a JSON object (:func:`~.masking.fields_text`); another body as text.
        """
        kind = body.WhichOneof("value")
        if kind == "kvlist_value":
            if self.config.body_field:
                for entry in body.kvlist_value.values:
                    if entry.key == self.config.body_field:
                        return any_value_text(entry.value)
            return masking.fields_text(_fields_of(body) or [], _text_of, _fields_of)
        if kind is None or kind == "string_value":
            return ""
        return any_value_text(body)


def _text_of(value: AnyValue) -> str | None:
    return value.string_value if value.WhichOneof("value") == "string_value" else None


def _fields_of(value: AnyValue) -> list[tuple[str, AnyValue]] | None:
    """A map value's fields, read where they lie (no copy of the body into Python objects)."""
    return [(kv.key, kv.value) for kv in value.kvlist_value.values] if value.WhichOneof("value") == "kvlist_value" else None
