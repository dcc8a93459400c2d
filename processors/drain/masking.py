"""Masking the variable parts of a log line before it is clustered, with no per-system expressions.

Every part that names one thing among many becomes ``<*>``: UUIDs, URLs,
file paths (Unix ones of two or more parts, Windows ones), ``0x`` hex
numbers, MAC addresses, dotted names of three or more parts holding a digit
(host names, IP addresses, versions), numbers and hex words (runs of digits
and hex letters holding a digit, with the separators of dates, times and
addresses between them: ``2005-06-03-15.42.50``, ``10.0.0.1:80``,
``0245b64c``), what digits are left inside words (``root22_local`` ->
``root<*>_local``), and the value of a ``key=value`` word (``state=<*>``):
the key names a field, so what follows it is a value, even a word
(``isScreenOn=true``, ``=false``). Other words without a digit are left
alone: ``java.lang.NullPointerException`` stays, so a new exception class is
a new template.

>>> mask("user 1234 logged in from 10.0.0.1:22 at 2024-05-01T10:00:00Z")
'user <*> logged in from <*> at <*>'
>>> mask("Deleting block blk_-3544583377289625738 file /mnt/hadoop/dfs/data/current/blk_-35")
'Deleting block blk_<*> file <*>'
>>> mask("session 3fa85f64-5717-4562-b3fc-2c963f66afa6 lost on worker7.eu-1.example.com")
'session <*> lost on <*>'
>>> mask('release lock=1a2b, tag="RILJ", isScreenOn=false')
'release lock=<*>, tag=<*>, isScreenOn=<*>'
>>> tokens("a=1, b=2", extra_delimiters=(",", "="))
['a', '<*>', 'b', '<*>']
"""

from __future__ import annotations

import re

WILDCARD = "<*>"

_HEX = "[0-9a-fA-F]"
# What joins the parts of one value: dates, times, IPv4 and IPv6 addresses, ports, version numbers.
_JOIN = r"(?:::|[.:,/_-])"
_PATH_PART = r"""[^\s/\\'"()\[\]{}<>]"""
VARIABLES = re.compile(
    "|".join(
        [
            rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",  # UUID
            r"[A-Za-z][A-Za-z0-9+.-]*://\S+",  # URL
            rf"(?<![\w.~:/-])[\w.~-]*(?:/{_PATH_PART}+){{2,}}/?",  # path: two or more slashes
            rf"(?<![\w.\\])(?:[A-Za-z]:)?[\w.~-]*(?:\\+{_PATH_PART}+){{2,}}\\?",  # Windows path, registry key
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?",  # ISO 8601 time
            rf"(?<![0-9A-Za-z])0[xX]{_HEX}+(?![0-9A-Za-z])",  # 0x hex number
            rf"(?<![0-9A-Za-z:-]){_HEX}{{2}}(?:[:-]{_HEX}{{2}}){{5}}(?![0-9A-Za-z:-])",  # MAC address
            # A number or hex word, and what joins several into one value (dates, times, addresses).
            rf"(?<![0-9A-Za-z])[-+]?(?={_HEX}*\d){_HEX}+(?:{_JOIN}(?={_HEX}*\d){_HEX}+)*(?![0-9A-Za-z])",
            r"(?<![\w.-])(?=[\w.-]*\d)[\w-]+(?:\.[\w-]+){2,}",  # host name, version
            r"\d+(?:[.:,/_-]\d+)*",  # digits inside a word
            r"""(?<=\w=)(?:"[^"\s]*"|'[^'\s]*'|[^\s,;()\[\]{}<>"']+)""",  # the value of a key=value, maybe quoted
        ]
    )
)
# Every variable above holds a digit, a slash, a backslash or an equals sign: only words with one are looked at.
_CANDIDATE = re.compile(r"(?<!\S)\S*[\d/\\=]\S*")
# The commonest variable words, caught without the full expression: a number or hex word, maybe
# after a slash and before a punctuation mark (``42``, ``/10.0.0.1:80``, ``112,``), and a number after
# a name and an underscore (``blk_-123``, ``rdd_42``).
_NUMBER = re.compile(rf"(/?)[-+]?(?={_HEX}*\d){_HEX}+(?:{_JOIN}(?={_HEX}*\d){_HEX}+)*([,;:.)\]]?)")
_NAMED_NUMBER = re.compile(r"([A-Za-z]+_)-?\d+()")
# Masked words by word: the same words come back in line after line. All are forgotten at once past this.
WORD_CACHE = 65536
_masked_words: dict[str, str] = {}


def _mask_word(match: re.Match) -> str:
    word = match.group()
    masked = _masked_words.get(word)
    if masked is None:
        number = _NUMBER.fullmatch(word) or _NAMED_NUMBER.fullmatch(word)
        masked = number[1] + WILDCARD + number[2] if number else VARIABLES.sub(WILDCARD, word)
        if len(_masked_words) >= WORD_CACHE:
            _masked_words.clear()
        _masked_words[word] = masked
    return masked


def mask(text: str) -> str:
    """``text`` with each variable part replaced by ``<*>``."""
    return _CANDIDATE.sub(_mask_word, text)


def tokens(text: str, extra_delimiters: tuple[str, ...] = ()) -> list[str]:
    """The masked words of ``text``: split at white space and at each of ``extra_delimiters``."""
    masked = mask(text)
    for delimiter in extra_delimiters:
        masked = masked.replace(delimiter, " ")
    return masked.split()
