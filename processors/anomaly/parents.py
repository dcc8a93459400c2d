"""Parent baselines: a new key judged from its first record by what its parent group learned.

A parent (``parent: [resource.service.name]`` for operations, or
``[attributes.client.address/24]`` for client addresses) groups keys. Its
own models, in a key store of their own, learn the target of every record
of every key of the group, so they know what is usual *for one key of that
group* (one client's request rate, one operation's duration). A key seen
for the first time whose parent is past its warmup starts from a copy of
the parent's learned state (models, residual scales, features, calibration,
threshold; not its own rate clock, incident or trend) and is judged from its
first record, then learns its own. A key whose parent is not ready waits out
its own warmup, as without a parent.

Parents are not checkpointed: after a restart they learn again, and new keys
wait out their warmup until their parent is ready again.
"""

from __future__ import annotations

import copy

import numpy as np

from otelml.processors.anomaly.engine import Engine
from otelml.processors.anomaly.extract import BatchReader, Columns
from otelml.processors.anomaly.ranks import Ranks
from otelml.processors.anomaly.store import KeyStore, StateLayout

# State a new key keeps as its own: when it was last seen (its rate), and its incidents.
OWN_STATE = ("target.", "incident.")


class Parents:
    """The parent groups of one processor's keys, and the baselines they lend.

    Parameters
    ----------
    reader
        Reads each record's parent key; it must keep the same records, in the
        same order, as the processor's own reader (the same signal and target).
    engine
        The processor's engine: parents are scored and learn exactly as keys do.
    max_keys, ttl
        Bounds of the parents' key store (as ``state.max_keys`` and ``state.ttl``).
    """

    def __init__(self, reader: BatchReader, engine: Engine, max_keys: int, ttl: float):
        self.reader = reader
        self.engine = engine
        self.store = KeyStore(max_keys, ttl, StateLayout(engine.fields, engine.classes))
        self.lent = [name for name in engine.fields if not name.startswith(OWN_STATE)]
        self.objects = set(self.store.layout.objects)

    def read(self, batch) -> Columns:
        """Each record's parent key (``key_ids`` into ``keys``), aligned with the processor's own columns."""
        return self.reader.read(batch)

    def lend(self, arrays: dict, slots: np.ndarray, columns: Columns, family: Columns) -> int:
        """Give the batch's new keys (no record learned yet) their parent's state, when it is ready; how many got it."""
        new = np.flatnonzero(arrays["count"][slots] == 0)
        if not len(new):
            return 0
        present, first = np.unique(columns.key_ids, return_index=True)
        first_record = np.full(len(columns.keys), -1)
        first_record[present] = first
        parents = self.store.arrays
        lent = 0
        for position in new.tolist():
            record = first_record[position]
            parent = self.store.keys.get(family.keys[family.key_ids[record]]) if record >= 0 else None
            if parent is None or parents["count"][parent] <= self.engine.warmup:
                continue
            slot = slots[position]
            for name in self.lent:
                value = parents[name][parent]
                arrays[name][slot] = copy.deepcopy(value) if name in self.objects else value
            # Ready from its first record: the borrowed state stands for its warmup.
            arrays["count"][slot] = self.engine.warmup
            lent += 1
        return lent

    def learn(self, family: Columns, values: np.ndarray, times: np.ndarray, rates: np.ndarray | None,
              errors: list | None, attributes: list | None) -> None:
        """The parents learn the records of their keys (``values`` in the models' units), as a key learns its own."""
        slots = self.store.assign(family.keys)
        self.engine.score(self.store.arrays, slots, Ranks(family.key_ids, len(family.keys)), values, times, rates,
                          errors, attributes)
        np.maximum.at(self.store.arrays["last_seen"], slots[family.key_ids], times)  # kept alive by their keys' records
        self.store.clock = max(self.store.clock, float(np.max(times)))
        self.store.expire()
