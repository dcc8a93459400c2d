"""Incidents, decided per key: a run of anomalous records, opened on the first and closed when the key is quiet.

An incident opens on a record that is flagged (its score reached the
threshold, after warmup) while the key has none open. It stays open while
records keep being flagged, and closes on the record by which the key has
had ``quiet_records`` records in a row below the threshold *and*
``quiet`` seconds of record time since its last flagged record; that
record is no longer part of it. Every record of an incident carries its
id, made from the key and the opening record's time, so a replay gives
the live ids.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from otelml.processors.anomaly.config import IncidentConfig
from otelml.processors.anomaly.store import Field

ID_BYTES = 8  # 16 hex characters


def incident_id(key: tuple, opened: float) -> str:
    """The id of the incident of ``key`` opened at record time ``opened`` (seconds).

    >>> incident_id(("checkout", "GET /cart"), 1700000000.0)
    '93662297fed94659'
    """
    text = "\x1f".join(map(str, key)) + "\x1e" + str(round(opened * 1e9))
    return hashlib.blake2b(text.encode(), digest_size=ID_BYTES).hexdigest()


@dataclasses.dataclass
class Steps:
    """Per key of a rank: whether its record opened an incident, is part of one, and since when."""

    opens: np.ndarray
    member: np.ndarray
    opened: np.ndarray


class Incidents:
    """Opens and closes each key's incident, a rank of keys at a time.

    Examples
    --------
    >>> incidents = Incidents(IncidentConfig(quiet_records=2, quiet=0))
    >>> state = {name: np.full(1, field.fill, dtype=field.dtype) for name, field in incidents.fields.items()}
    >>> steps = [incidents.step(state, 1, np.array([flag]), np.array([float(t)]))
    ...          for t, flag in enumerate([False, True, True, False, False, True])]
    >>> [(bool(s.opens[0]), bool(s.member[0])) for s in steps]
    [(False, False), (True, True), (False, True), (False, True), (False, False), (True, True)]
    """

    fields = {
        "open": Field((), np.bool_, False),
        "opened": Field((), np.float64, np.nan),
        "last_flagged": Field((), np.float64, np.nan),
        "quiet": Field((), np.int64, 0),
    }

    def __init__(self, config: IncidentConfig):
        self.quiet_records = config.quiet_records
        self.quiet_seconds = config.quiet

    def step(self, state: dict, size: int, flagged: np.ndarray, times: np.ndarray) -> Steps:
        is_open, opened, last_flagged, quiet = (state[name][:size] for name in ("open", "opened", "last_flagged", "quiet"))
        opens = flagged & ~is_open
        calm = quiet + 1
        closes = is_open & ~flagged & (calm >= self.quiet_records) & (times - last_flagged >= self.quiet_seconds)
        member = (is_open & ~closes) | opens
        np.copyto(opened, times, where=opens)
        np.copyto(last_flagged, times, where=flagged)
        np.copyto(quiet, np.where(member & ~flagged, calm, 0))
        np.copyto(is_open, member)
        return Steps(opens, member, np.where(member, opened, np.nan))
