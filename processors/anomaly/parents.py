"""Parent baselines: a new key judged from its first record by what its parent group learned.

A parent (``parent: [resource.service.name]`` for operations, or
``[attributes.client.address/24]`` for client addresses) groups keys. Its
own models, in a key store of their own, learn the records of the keys of
the group (one a second of record time), so they know what is usual *for one
key of that group* (one client's request rate, one operation's duration). A
key seen for the first time whose parent is past its warmup starts from a
copy of the parent's learned state (models, residual scales, calibration,
threshold; not its rate clock, incidents, recent values or trend) and is
judged from its first record, then learns its own. A key whose parent is not
ready waits out its own warmup, as without a parent.

Parents are kept in the processor's checkpoint file beside its keys, so a
restarted processor lends at once. They are not in the Kafka state changelog:
a gateway's parents learn from the partitions it owns, and one that takes
partitions over lends what its own parents learned.
"""

from __future__ import annotations

import copy

import numpy as np

from otelml.processors.anomaly.engine import Engine
from otelml.processors.anomaly.extract import BatchReader, Columns
from otelml.processors.anomaly.ranks import Ranks
from otelml.processors.anomaly.store import Field, KeyStore, StateLayout

# State a new key keeps as its own: its rate clock, its incidents and its features' recent values.
# The kernels' ``recent`` fields start from their long-run ones: a key borrows what is usual, not
# what the group did last; their ``own`` fields start afresh.
OWN_STATE = ("target.", "incident.", "features.")
# A parent learns at most one record per this many seconds of record time.
LEARNING_STEP = 1.0


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
    signing_key
        Signs the parents' state in a checkpoint (``state.checkpoint.key``), as the keys' own.
    """

    def __init__(self, reader: BatchReader, engine: Engine, max_keys: int, ttl: float, signing_key: bytes | None = None):
        self.reader = reader
        self.engine = engine
        # learned_step: the latest step of record time the parent learned a record from.
        self.store = KeyStore(
            max_keys,
            ttl,
            StateLayout({**engine.fields, "learned_step": Field((), np.float64, -np.inf)}, engine.classes),
            signing_key,
        )
        self.lent = [name for name in engine.fields if not name.startswith(OWN_STATE)]
        self.restarted = [
            (prefix + recent, prefix + usual)
            for prefix, stage in engine.stages
            for recent, usual in getattr(stage, "recent", {}).items()
        ]
        self.objects = set(self.store.layout.objects)
        self.own = [
            (prefix + name, field.fill)
            for prefix, stage in engine.stages
            for name, field in stage.fields.items()
            if name in getattr(stage, "own", ())
        ]

    def read(self, batch) -> Columns:
        """Each record's parent key (``key_ids`` into ``keys``), aligned with the processor's own columns."""
        return self.reader.read(batch)

    def step(
        self, arrays: dict, slots: np.ndarray, columns: Columns, family: Columns, values: np.ndarray, rates: np.ndarray | None
    ) -> int:
        """Before the keys score a batch: lend their parents' state to its new keys, and let the parents learn it.

        All in stream order: a new key (no record learned yet) borrows its
        parent's state as it stands just before the key's first record of the
        batch, the parent having learned the records it takes (the first of
        each :data:`LEARNING_STEP` seconds of record time, see
        :func:`_first_of_each_step`) up to there. What a key borrows then
        depends on the stream alone, never on how it was cut into batches, so a
        replay lends the live baselines. ``slots`` are the keys' slots in
        ``arrays``; ``values`` are in the models' units. Returns how many keys
        borrowed.
        """
        parent_slots = self.store.assign(family.keys)
        taught = _first_of_each_step(
            family.key_ids, np.floor(columns.times / LEARNING_STEP), self.store.arrays["learned_step"], parent_slots
        )
        new = np.flatnonzero(arrays["count"][slots] == 0)
        present, first = np.unique(columns.key_ids, return_index=True)
        first_record = np.full(len(columns.keys), -1)
        first_record[present] = first
        learned, lent = 0, 0
        for record, position in sorted(
            (first_record[position], position) for position in new.tolist() if first_record[position] >= 0
        ):
            before = int(np.searchsorted(taught, record))
            if before > learned:
                self._learn(taught[learned:before], parent_slots, columns, family, values, rates)
                learned = before
            lent += self._lend(arrays, slots[position], parent_slots[family.key_ids[record]])
        self._learn(taught[learned:], parent_slots, columns, family, values, rates)
        # Kept alive by every record of their keys, learned or not.
        np.maximum.at(self.store.arrays["last_seen"], parent_slots[family.key_ids], columns.times)
        self.store.clock = max(self.store.clock, float(np.max(columns.times)))
        self.store.expire()
        return lent

    def _lend(self, arrays: dict, slot: int, parent: int) -> int:
        parents = self.store.arrays
        if parents["count"][parent] <= self.engine.warmup:
            return 0
        for name in self.lent:
            value = parents[name][parent]
            arrays[name][slot] = copy.deepcopy(value) if name in self.objects else value
        for recent, usual in self.restarted:
            arrays[recent][slot] = arrays[usual][slot]
        for name, fill in self.own:
            arrays[name][slot] = fill
        # Ready from its first record: the borrowed state stands for its warmup.
        arrays["count"][slot] = self.engine.warmup
        return 1

    def _learn(
        self,
        records: np.ndarray,
        parent_slots: np.ndarray,
        columns: Columns,
        family: Columns,
        values: np.ndarray,
        rates: np.ndarray | None,
    ) -> None:
        """The parents learn ``records`` (indices in batch order), as a key learns its own."""
        if not len(records):
            return
        self.engine.score(
            self.store.arrays,
            parent_slots,
            Ranks(family.key_ids[records], len(family.keys)),
            values[records],
            columns.times[records],
            None if rates is None else rates[records],
            [columns.errors[i] for i in records] if columns.errors else None,
            [columns.attributes[i] for i in records] if columns.attributes else None,
        )


def _first_of_each_step(parent_ids: np.ndarray, steps: np.ndarray, learned: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Indices (in batch order) of the records that open a new step of their parent; ``learned`` (per slot) moves on.

    A record opens a step when its step is later than every step its parent
    has learned from, this batch's earlier records included.

    >>> learned = np.full(2, -np.inf)
    >>> _first_of_each_step(np.array([0, 0, 1, 0, 1]), np.array([5.0, 5.0, 5.0, 6.0, 4.0]), learned, np.array([0, 1])).tolist()
    [0, 2, 3]
    >>> learned.tolist()
    [6.0, 5.0]
    """
    chosen = [np.empty(0, dtype=np.intp)]
    for parent in np.unique(parent_ids).tolist():
        members = np.flatnonzero(parent_ids == parent)
        member_steps = steps[members]
        slot = slots[parent]
        before = np.maximum.accumulate(np.concatenate(([learned[slot]], member_steps)))[:-1]
        chosen.append(members[member_steps > before])
        learned[slot] = max(learned[slot], float(member_steps.max()))
    return np.sort(np.concatenate(chosen))
