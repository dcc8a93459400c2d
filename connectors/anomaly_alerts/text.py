"""What an alert says: its severity and its one-line text, from the details the anomaly processor wrote.

This is the only place alert text is made; the processor writes structured
details (``otelml.key``, ``otelml.actual``, ...) and the connector calls
:func:`alert_text` for every alert it sends.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from otelml import conventions as names
from otelml.processors.anomaly.novelty import COMMON_SHARE, share
from otelml.references import NOVELTY

ANOMALY = "AnomalyIncident"
PREDICTED = "PredictedIncident"

# Units written without a space before them (``85%``, ``20.5/s``).
_TIGHT_UNITS = {"%": "%", "1/s": "/s"}


@dataclasses.dataclass(frozen=True)
class Details:
    """The facts of one alert, read from a record's ``otelml.*`` attributes (absent ones are None).

    >>> Details.of({"otelml.key": "device.id=d1", "otelml.actual": 74.2}).actual
    74.2
    """

    key: str | None = None
    target: str | None = None
    unit: str = ""
    actual: float | None = None
    expected: float | None = None
    low: float | None = None
    high: float | None = None
    score: float | None = None
    models: tuple[str, ...] = ()
    forecast: float | None = None
    target_forecast: float | None = None
    limit: float | None = None
    crossing_seconds: float | None = None
    recent_level: float | None = None
    usual_level: float | None = None
    template: str | None = None

    @classmethod
    def of(cls, values: Mapping[str, object]) -> Details:
        """``values``: attribute name -> Python value (numbers, text, lists)."""
        listed = values.get(names.MODELS)
        models = [m.strip() for m in listed.split(",") if m.strip()] if isinstance(listed, str) else listed
        return cls(
            key=_text(values.get(names.KEY)),
            target=_text(values.get(names.TARGET)),
            unit=_text(values.get(names.UNIT)) or "",
            actual=_number(values.get(names.ACTUAL)),
            expected=_number(values.get(names.EXPECTED)),
            low=_number(values.get(names.RANGE_LOW)),
            high=_number(values.get(names.RANGE_HIGH)),
            score=_number(values.get(names.SCORE)),
            models=tuple(str(m) for m in models) if isinstance(models, (list, tuple)) else (),
            forecast=_number(values.get(names.FORECAST)),
            target_forecast=_number(values.get(names.TARGET_FORECAST)),
            limit=_number(values.get(names.LIMIT)),
            crossing_seconds=_number(values.get(names.CROSSING_SECONDS)),
            recent_level=_number(values.get(names.LEVEL_RECENT)),
            usual_level=_number(values.get(names.LEVEL_USUAL)),
            template=_text(values.get(names.TEMPLATE)),
        )


def severity(name: str, details: Details, critical_score: float) -> str:
    """``critical``, ``warning`` or ``info``, as Alertmanager routes them.

    An anomaly incident is critical when its score reaches ``critical_score``
    and a warning below it; a predicted incident is a warning when the target
    is forecast to cross a configured limit, and info when only the score's
    trend rises.

    >>> severity(ANOMALY, Details(score=0.95), 0.9), severity(ANOMALY, Details(score=0.7), 0.9)
    ('critical', 'warning')
    >>> severity(PREDICTED, Details(limit=80.0), 0.9), severity(PREDICTED, Details(), 0.9)
    ('warning', 'info')
    """
    if name == ANOMALY:
        return "critical" if (details.score or 0.0) >= critical_score else "warning"
    return "warning" if details.limit is not None else "info"


def alert_text(
    name: str, details: Details, duration: float, resolved: bool = False, came_true: bool = False, others: int = 0
) -> str:
    """The alert's one line: what, where, how far from usual, how sure, and for how long.

    ``duration`` is the seconds since the incident's first record (how long it
    lasted, for a resolution); ``came_true`` says a prediction is resolved
    because its incident opened; ``others`` counts the other keys a grouped
    alert covers.

    >>> d = Details(key="service.name=checkout span.name=GET /cart", target="duration", unit="ms", actual=2000.0,
    ...             expected=52.14, low=40.3, high=70.8, score=0.97, models=("ewm_mean",))
    >>> alert_text(ANOMALY, d, 0.0)
    'anomaly in service.name=checkout span.name=GET /cart: duration 2,000 ms, expected 52.1 ms (usual 40.3 to 70.8 ms); score 0.97 (ewm_mean); just opened'
    >>> d = Details(key="device.id=d1", target="attributes.temperature", unit="°C", actual=74.2, limit=80.0,
    ...             crossing_seconds=725.0, score=0.41)
    >>> alert_text(PREDICTED, d, 60.0)
    'predicted in device.id=d1: attributes.temperature reaches 80 °C in about 12 min (now 74.2 °C); score 0.41; going on for 1 min'
    >>> alert_text(ANOMALY, Details(key="client.address=203.0.113.66", score=0.8), 2.0, others=2)
    'anomaly in client.address=203.0.113.66 and 2 other keys: score 0.80; going on for 2 s'

    A novelty alert names the message, and how rare it is for the key (``novelty`` is nats of rarity).

    >>> d = Details(key="service.name=checkout", target="novelty", actual=3.14, template="Lookup failed for <*>",
    ...             score=0.72, models=("rarity",))
    >>> alert_text(ANOMALY, d, 0.0)
    'anomaly in service.name=checkout: rare message "Lookup failed for <*>": about 1 in 2,310 records of the key, its usual ones 1 in 100 or more; score 0.72 (rarity); just opened'

    A key of the template's id is told by its message:

    >>> d = Details(key="service.name=checkout log.record.template.id=5e55", target="rate", unit="1/s", actual=20.4,
    ...             expected=0.52, template="Payment declined for <*>", score=0.91, models=("burst",))
    >>> alert_text(ANOMALY, d, 0.0)
    'anomaly in service.name=checkout log.record.template.id=5e55 (message "Payment declined for <*>"): rate 20.4/s, expected 0.52/s; score 0.91 (burst); just opened'

    A level model that fired says first what moved: the key's recent level against its usual one; the record
    that crossed the threshold comes after it.

    >>> d = Details(key="service.name=auth", target="duration", unit="ms", actual=9.07, expected=10.7, low=3.81,
    ...             high=27.7, recent_level=17.24, usual_level=8.93, score=0.66, models=("level_shift",))
    >>> alert_text(ANOMALY, d, 0.0)
    'anomaly in service.name=auth: duration level 17.2 ms against a usual 8.93 ms (this record 9.07 ms, expected 10.7 ms, usual 3.81 to 27.7 ms); score 0.66 (level_shift); just opened'
    """
    where = f"{'anomaly' if name == ANOMALY else 'predicted'} in {details.key or 'an unnamed key'}"
    if details.template and names.TEMPLATE_ID in (details.key or ""):
        where += f' (message "{details.template}")'  # the key names the message by its id only
    if others:
        where += f" and {others} other key{'s' if others > 1 else ''}"
    head: str | None
    if name == PREDICTED:
        head = " ".join(part for part in (_forecast(details), _context(details)) if part)
    else:
        head = _measure(details)
    lifetime = (
        f"lasted {human_duration(duration)}"
        if resolved
        else "just opened"
        if duration <= 0
        else f"going on for {human_duration(duration)}"
    )
    body = "; ".join(part for part in (head, _score(details), lifetime) if part)
    return f"{'came true: ' if came_true else 'resolved: ' if resolved else ''}{where}: {body}"


def _facts(details: Details) -> tuple[str | None, str | None, str | None]:
    """The actual value, the expected one and the usual range, each with its unit (None when unknown)."""
    unit = details.unit
    actual = quantity(details.actual, unit) if details.actual is not None else None
    expected = f"expected {quantity(details.expected, unit)}" if details.expected is not None else None
    usual = (
        f"usual {_figure(details.low)} to {quantity(details.high, unit)}"
        if details.low is not None and details.high is not None
        else None
    )
    return actual, expected, usual


def _measure(details: Details) -> str | None:
    """``duration 2,000 ms, expected 52.1 ms (usual 40.3 to 70.8 ms)``; a level first when a level model fired."""
    if details.target == NOVELTY and details.actual is not None:
        return _rarity(details.actual, details.template)
    actual, expected, usual = _facts(details)
    target = details.target or "value"
    if details.recent_level is not None and details.usual_level is not None:
        # What moved is the level; the record that crossed may itself lie within its usual range.
        level = (
            f"level {quantity(details.recent_level, details.unit)} against a usual {quantity(details.usual_level, details.unit)}"
        )
        record = ", ".join(fact for fact in (f"this record {actual}" if actual else None, expected, usual) if fact)
        return f"{target} {level}" + (f" ({record})" if record else "")
    text = ", ".join(fact for fact in (actual, expected) if fact)
    if usual:
        text = f"{text} ({usual})" if text else usual
    return f"{target} {text}" if text else None


def _rarity(novelty: float, template: str | None) -> str:
    """What a novelty score means: how rare the record's message is for its key, against its usual messages."""
    message = f'rare message "{template}"' if template else "rare message"
    return (
        f"{message}: about 1 in {_figure(1 / share(novelty))} records of the key, "
        f"its usual ones 1 in {_figure(1 / COMMON_SHARE)} or more"
    )


def _context(details: Details) -> str | None:
    """``(now 74.2 °C, expected 73.9 °C, usual 72 to 75.8 °C)``, beside a forecast."""
    actual, expected, usual = _facts(details)
    facts = [fact for fact in (f"now {actual}" if actual else None, expected, usual) if fact]
    return f"({', '.join(facts)})" if facts else None


def _forecast(details: Details) -> str | None:
    """``attributes.temperature reaches 80 °C in about 12 min``, or the score's own trend."""
    target = details.target or "the value"
    if details.limit is not None:
        falling = details.target_forecast is not None and details.actual is not None and details.target_forecast < details.actual
        verb = "falls to" if falling else "reaches"
        when = f" in about {human_duration(details.crossing_seconds)}" if details.crossing_seconds is not None else ""
        return f"{target} {verb} {quantity(details.limit, details.unit)}{when}"
    if details.crossing_seconds is not None:
        return f"score reaches the threshold in about {human_duration(details.crossing_seconds)}"
    if details.forecast is not None:
        return f"score trend rising to {details.forecast:.2f}"
    return None


def _score(details: Details) -> str | None:
    if details.score is None:
        return None
    return f"score {details.score:.2f}" + (f" ({', '.join(details.models)})" if details.models else "")


def quantity(value: float, unit: str) -> str:
    """A value with its unit: ``2,000 ms``, ``20.5/s``, ``74.2`` (no unit: as given).

    >>> quantity(2000.0, "ms"), quantity(20.54, "1/s"), quantity(74.2, "")
    ('2,000 ms', '20.5/s', '74.2')
    """
    if not unit:
        return _figure(value)
    if unit in _TIGHT_UNITS:
        return _figure(value) + _TIGHT_UNITS[unit]
    return f"{_figure(value)} {unit}"


def _figure(value: float) -> str:
    """Three significant digits, thousands grouped: ``52.1``, ``0.00123``, ``2,000``."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def human_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 min 20 s``, ``2 h 5 min``, ``3 d 4 h``.

    >>> human_duration(12.4), human_duration(200), human_duration(725), human_duration(7500)
    ('12 s', '3 min 20 s', '12 min', '2 h 5 min')
    """
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 86400:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _text(value) -> str | None:
    return None if value is None else str(value)
