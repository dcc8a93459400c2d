"""The ``novelty`` target: how rare a log record's template is for its key, in nats beyond common.

A record's template is its ``log.record.template.id`` attribute (written by
the ``drain`` processor; records without one pass unscored). Per key, a
table of :data:`TEMPLATES` templates with counts that halve every
:data:`HALF_LIFE` of the key's records, and how many records the key has
logged since it last met a template new to it (``s``, its vocabulary's
*settled run*). With ``n`` the key's (decayed) record count and ``c`` the
template's, both before the record is counted, the record's share estimate is

- a known template: ``(c + 1/2) / (n + 1)``;
- a never-seen one: ``(1/2) / (min(s, n) + 1)``: the same estimate with
  ``c = 0``, over the records since the key's vocabulary last changed;

and its novelty is ``max(0, log(COMMON_SHARE / share))``. A template that
makes up at least :data:`COMMON_SHARE` of the key's records is common and
scores 0, however the key's records divide among such templates; below
that, the score is how many nats rarer it is. A template never seen after
10,000 records with no other new one scores log(200) = 5.3, one seen three
times 3.4, one in a thousand records 2.3. When the table is full, a new
template takes the place of the least counted one (the counts decay, so a
template gone quiet makes room).

Why the settled run: a new message is news when the key's vocabulary had
settled, whatever the key logged before. While it is changing — a new
component starting, a crash printing a dump of lines never seen, a release
with new messages — each further new line is part of the same change, as
likely as the rate at which new ones are coming, so it is not news again;
once the key has gone :data:`SETTLED` records without a new template, the
next one is. The same bound delays a key's first verdicts: with ``n``
records nothing new can be estimated rarer than ``1 / (2 (n + 1))``, so a
young key cannot flag a message merely because it had not logged it yet.

The value is already a calibrated quantity: nats of rarity against the key's
own vocabulary, with what the key usually logs at 0. So it is judged by the
``rarity`` detector (:class:`RarityKernel`) on a fixed scale, where a
template rarer than :data:`RARE_SHARE` of the key's records reaches the
default threshold, rather than by regressors whose residuals are measured
against the key's past surprises: those learn from a key's first new
messages that new messages are ordinary for it, and stop flagging them.

>>> novelty = Novelty()
>>> state = {name: np.full((1, *field.shape), field.fill, field.dtype) for name, field in novelty.fields.items()}
>>> common, rare = template_code("a1b2c3d4e5f60718"), template_code("ffee000011112222")
>>> [round(float(novelty.step(state, 1, np.array([common]))[0]), 2) for _ in range(1000)][-3:]
[0.0, 0.0, 0.0]
>>> round(float(novelty.step(state, 1, np.array([rare]))[0]), 2), round(float(novelty.step(state, 1, np.array([rare]))[0]), 2)
(2.96, 1.86)
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from otelml.processors.anomaly.kernels import DETECTOR, Kernel
from otelml.processors.anomaly.store import Field

# Templates remembered per key (4 KB of state per key).
TEMPLATES = 256
# A template's count weighs half after this many of its key's records.
HALF_LIFE = 10_000
DECAY = 0.5 ** (1.0 / HALF_LIFE)
# A template that makes up this share of its key's records is common: its novelty is 0.
COMMON_SHARE = 0.01
# A template rarer than this share of its key's records (one in a thousand) scores the default threshold, 0.65.
RARE_SHARE = 0.001
# Nats of rarity that score 0.5: log(COMMON_SHARE / RARE_SHARE) nats then score 0.65.
HALF_SCORE = math.log(COMMON_SHARE / RARE_SHARE) * (1 - 0.65) / 0.65
# Records without a new template a key needs before a never-seen one is rarer than RARE_SHARE: 0.5 / (s + 1) <= RARE_SHARE.
SETTLED = round(0.5 / RARE_SHARE) - 1


def share(novelty: float) -> float:
    """The share of its key's records a template of ``novelty`` makes up (at least :data:`COMMON_SHARE` for 0).

    >>> round(1 / share(math.log(10)))
    1000
    """
    return COMMON_SHARE * math.exp(-novelty)


def template_code(template_id: str) -> float:
    """A template id as a number the per-key arrays can hold: 52 bits of its hash, exact in a float.

    >>> template_code("9d8e1a5fc0d4085f") == template_code("9d8e1a5fc0d4085f") != template_code("0000000000000000")
    True
    """
    digest = hashlib.blake2b(template_id.encode(), digest_size=8).digest()
    return float(int.from_bytes(digest, "big") >> 12)


class Novelty:
    """Per key: the templates seen, their decayed counts, and the decayed record count."""

    fields = {
        "templates": Field((TEMPLATES,), np.float64, np.nan),
        "counts": Field((TEMPLATES,), np.float64, 0.0),
        "records": Field((), np.float64, 0.0),
        "settled": Field((), np.float64, 0.0),
    }

    def step(self, state: dict, size: int, codes: np.ndarray) -> np.ndarray:
        """The novelty of each key's record of a rank (``codes`` from :func:`template_code`); then each key counts it."""
        templates, counts, records = state["templates"][:size], state["counts"][:size], state["records"][:size]
        settled = state["settled"][:size]
        rows = np.arange(size)
        hits = templates == codes[:, None]
        found = hits.any(axis=1)
        # A template not in the table takes the least counted place (an empty one first: its count is 0).
        place = np.where(found, hits.argmax(axis=1), counts.argmin(axis=1))
        seen = np.where(found, counts[rows, place], 0.0)
        known = (seen + 0.5) / (records + 1.0)
        never_seen = 0.5 / (np.minimum(settled, records) + 1.0)
        share = np.where(found, known, never_seen)
        novelty = np.maximum(np.log(COMMON_SHARE / share), 0.0)
        counts *= DECAY
        counts[rows, place] = np.where(found, counts[rows, place], 0.0) + 1.0
        templates[rows, place] = codes
        records *= DECAY
        records += 1.0
        np.copyto(settled, np.where(found, settled + 1.0, 0.0))
        return novelty


class RarityKernel(Kernel):
    """A detector of the ``novelty`` target: nats of rarity ``v`` scored ``v / (v + half)``, on the same scale for every key.

    With the default ``half`` (:data:`HALF_SCORE`), a template rarer than one
    record in a thousand of its key scores at least 0.65, the default
    threshold; one in a hundred (common) scores 0.

    >>> from otelml.processors.anomaly.kernels import Rank
    >>> kernel = RarityKernel(HALF_SCORE)
    >>> rank = Rank(3, np.array([0.0, np.log(10.0), np.log(200.0)]), np.zeros(3))
    >>> kernel.predict({}, rank).round(2).tolist()
    [0.0, 0.65, 0.81]
    """

    kind = DETECTOR
    fields: dict[str, Field] = {}

    def __init__(self, half: float):
        self.half = half

    def predict(self, state, rank):
        rarity = np.maximum(rank.y, 0.0)
        return rarity / (rarity + self.half)

    def learn(self, state, rank, y, learn):
        """Nothing to learn: the counts behind the rarity are the target's (:class:`Novelty`)."""
