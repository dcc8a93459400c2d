"""The ``novelty`` target: how rare a log record's template is for its key, in nats beyond common.

A record's template is its ``log.record.template.id`` attribute (written by
the ``drain`` processor; records without one pass unscored). Per key, a
table of :data:`TEMPLATES` templates with counts that halve every
:data:`HALF_LIFE` of the key's records. With ``n`` the key's (decayed)
record count and ``c`` the template's, both before the record is counted,
the record's share estimate is ``(c + 1/2) / (n + 1)``, and its novelty is

    max(0, log(COMMON_SHARE * (n + 1) / (c + 1/2)))

A template that makes up at least :data:`COMMON_SHARE` of the key's records
is common and scores 0, however the key's records divide among such
templates; below that, the score is how many nats rarer it is. A template
never seen after 10,000 records scores log(200) = 5.3, one seen three times
3.4, one in a thousand records 2.3. The models then judge that series as any
other target: most records of a key score 0, and a new or rare message
stands out unless rare messages are what the key usually logs. When the
table is full, a new template takes the place of the least counted one (the
counts decay, so a template gone quiet makes room).

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

import numpy as np

from otelml.processors.anomaly.store import Field

# Templates remembered per key (4 KB of state per key).
TEMPLATES = 256
# A template's count weighs half after this many of its key's records.
HALF_LIFE = 10_000
DECAY = 0.5 ** (1.0 / HALF_LIFE)
# A template that makes up this share of its key's records is common: its novelty is 0.
COMMON_SHARE = 0.01


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
    }

    def step(self, state: dict, size: int, codes: np.ndarray) -> np.ndarray:
        """The novelty of each key's record of a rank (``codes`` from :func:`template_code`); then each key counts it."""
        templates, counts, records = state["templates"][:size], state["counts"][:size], state["records"][:size]
        rows = np.arange(size)
        hits = templates == codes[:, None]
        found = hits.any(axis=1)
        # A template not in the table takes the least counted place (an empty one first: its count is 0).
        place = np.where(found, hits.argmax(axis=1), counts.argmin(axis=1))
        seen = np.where(found, counts[rows, place], 0.0)
        novelty = np.maximum(np.log(COMMON_SHARE * (records + 1.0) / (seen + 0.5)), 0.0)
        counts *= DECAY
        counts[rows, place] = np.where(found, counts[rows, place], 0.0) + 1.0
        templates[rows, place] = codes
        records *= DECAY
        records += 1.0
        return novelty
