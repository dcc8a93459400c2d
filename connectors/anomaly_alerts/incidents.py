"""Which alerts exist: incidents by key, opened, updated and resolved.

An alert belongs to a *group*: by default each key is its own group; with the
connector's ``group_by``, the incidents of every key of a group that overlap
in time share one alert, which lists its ``members`` (the keys, the opening
one first), as Alertmanager groups the alerts of one outage.

The anomaly processor decides incidents (``otelml.incident.open`` on the
record that opens one, ``otelml.incident.id`` on its records); this module
turns them into alerts an on-call engineer can follow: one when an incident
opens, at most one update per ``repeat_interval`` while it goes on, and one
resolution once its key has been quiet for ``resolve_after``.

Quiet is judged two ways. Where records of the incident keep coming, by
their own times: a record of the incident ``resolve_after`` after its last
flagged one resolves it (so replays resolve exactly as the live run did).
Where they stop (the key went silent, or the processor closed its incident
and stopped marking the key's records), by the wall clock: an incident none
of whose records arrived for ``resolve_after`` is resolved by
:meth:`Incidents.expire`, which the connector calls on a timer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otelml.connectors.anomaly_alerts.text import ANOMALY, PREDICTED

NANOS = 1_000_000_000


@dataclasses.dataclass
class Incident:
    """One open alert: an anomaly incident of a group of keys, or a predicted one.

    ``opening`` and ``latest`` are what the connector needs to write its
    alerts (a record's resource, trace context and details), from the record
    that opened it (what the opening and the resolution speak of) and from
    its latest flagged record (what an update speaks of); times are record
    times in nanoseconds, ``arrived`` is the wall clock (seconds) of its last
    record.
    """

    name: str
    key: str
    severity: str
    opening: Any
    latest: Any
    started: int
    last_flagged: int
    last_seen: int
    last_alert: int
    arrived: float
    ids: set[str] = dataclasses.field(default_factory=set)
    members: list[str] = dataclasses.field(default_factory=list)

    def join(self, member: str) -> None:
        """Count ``member`` (a key) among the keys this alert covers."""
        if member and member not in self.members:
            self.members.append(member)


@dataclasses.dataclass(frozen=True)
class Alert:
    """An alert to send: ``incident`` opened (``open``), goes on (``update``) or is over (``resolve``) at ``time``.

    ``source`` is the record the alert speaks of: the incident's latest flagged
    record when it opens or goes on, its opening record when it is resolved;
    ``came_true`` marks the resolution of a prediction whose incident opened.
    """

    incident: Incident
    event: str
    time: int
    source: Any
    came_true: bool = False

    @property
    def resolved(self) -> bool:
        return self.event == "resolve"

    @property
    def duration(self) -> float:
        """Seconds from the incident's first record to this alert."""
        return max(0, self.time - self.incident.started) / NANOS


class Incidents:
    """The open alerts of one connector, by group.

    Parameters
    ----------
    resolve_after
        Seconds a key must be quiet (no flagged or predicting record) before
        its alert is resolved.
    repeat_interval
        Seconds between updates of an open alert; 0 sends none.

    Examples
    --------
    >>> incidents = Incidents(resolve_after=60, repeat_interval=0)
    >>> [a.event for a in incidents.anomaly("i1", "k", opens=True, flagged=True, time=0, arrived=0.0,
    ...                                        severity="warning", source="first")]
    ['open']
    >>> incidents.anomaly("i1", "k", opens=False, flagged=True, time=30 * NANOS, arrived=30.0, severity="", source="")
    []
    >>> [(a.event, a.duration) for a in incidents.anomaly("i1", "k", opens=False, flagged=False, time=91 * NANOS,
    ...                                                      arrived=91.0, severity="", source="")]
    [('resolve', 30.0)]
    """

    def __init__(self, resolve_after: float, repeat_interval: float):
        self.resolve_after = resolve_after
        self.repeat_interval = repeat_interval
        self._open: dict[tuple[str, str], Incident] = {}
        self._by_id: dict[str, Incident] = {}

    def __len__(self) -> int:
        return len(self._open)

    def anomaly(
        self,
        incident_id: str,
        key: str,
        *,
        opens: bool,
        flagged: bool,
        time: int,
        arrived: float,
        severity: str,
        source: Any,
        member: str = "",
    ) -> list[Alert]:
        """A record of the processor's incident ``incident_id`` of ``member`` (a key) in group ``key``.

        An alert opens on the record that opens the incident, or on a flagged
        record of an incident that has no alert open (the connector restarted,
        or the incident outlasted an alert already resolved). An incident the
        processor opens while its group's alert is still open joins that alert.
        """
        incident = self._by_id.get(incident_id)
        alerts: list[Alert] = []
        if incident is None:
            if not (opens or flagged):
                return alerts  # a calm record of an incident whose alert is already over
            incident = self._open.get((ANOMALY, key))
            if incident is None:
                predicted = self._open.get((PREDICTED, key))
                if predicted is not None:  # the prediction came true: it is over, the incident takes its place
                    alerts.append(dataclasses.replace(self._resolve(predicted, time), came_true=True))
                incident = self._start(ANOMALY, key, severity, source, time, arrived)
                alerts.append(Alert(incident, "open", time, source))
            incident.ids.add(incident_id)
            incident.join(member)
            self._by_id[incident_id] = incident
        return alerts + self._observe(incident, flagged, time, arrived, source)

    def predicted(self, key: str, *, time: int, arrived: float, severity: str, source: Any, member: str = "") -> list[Alert]:
        """A record predicting an incident of ``member`` in group ``key``; ignored while the group has an anomaly incident open."""
        if (ANOMALY, key) in self._open:
            return []
        incident = self._open.get((PREDICTED, key))
        alerts = []
        if incident is None:
            incident = self._start(PREDICTED, key, severity, source, time, arrived)
            alerts.append(Alert(incident, "open", time, source))
        incident.join(member)
        return alerts or self._observe(incident, True, time, arrived, source)

    def expire(self, now: float) -> list[Alert]:
        """Resolve the alerts none of whose records arrived in the last ``resolve_after`` seconds of wall time."""
        silent = [i for i in self._open.values() if now - i.arrived >= self.resolve_after]
        return [self._resolve(incident, incident.last_flagged) for incident in silent]

    def _start(self, name: str, key: str, severity: str, source: Any, time: int, arrived: float) -> Incident:
        incident = Incident(
            name, key, severity, source, source, started=time, last_flagged=time, last_seen=time, last_alert=time, arrived=arrived
        )
        self._open[(name, key)] = incident
        return incident

    def _observe(self, incident: Incident, flagged: bool, time: int, arrived: float, source: Any) -> list[Alert]:
        incident.arrived = arrived
        incident.last_seen = max(incident.last_seen, time)
        if flagged:
            incident.last_flagged = max(incident.last_flagged, time)
            incident.latest = source
            if self.repeat_interval and time - incident.last_alert >= self.repeat_interval * NANOS:
                incident.last_alert = time
                return [Alert(incident, "update", time, source)]
        elif incident.last_seen - incident.last_flagged >= self.resolve_after * NANOS:
            return [self._resolve(incident, incident.last_flagged)]
        return []

    def _resolve(self, incident: Incident, time: int) -> Alert:
        del self._open[(incident.name, incident.key)]
        for incident_id in incident.ids:
            del self._by_id[incident_id]
        # What was paged for, not the latest flagged record: after a spike that is often a fast request the
        # models, still expecting the spike, flag while the key settles back.
        return Alert(incident, "resolve", time, incident.opening)
