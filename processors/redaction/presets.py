"""Named patterns for ``blocked_value_presets``: values that are personal data or secrets.

Each preset is a compiled pattern and, where the pattern alone would mask
too much, a check of the matched text: card numbers are masked only when
their Luhn check digit is right, so that order numbers and timestamps of
the same length survive.

>>> PRESETS["ipv4"].pattern.sub("****", "from 10.1.2.3:443")
'from ****:443'
>>> luhn_valid("4111 1111 1111 1111"), luhn_valid("4111 1111 1111 1112")
(True, False)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
# Forms with an embedded IPv4 come first: the first alternative that
# matches wins, and "::ffff:" alone must not take the place of the whole.
# A digit is required so that names such as "Record::Base" or "std::add"
# in log lines are left alone (an address of hex letters only is rare).
_IPV6 = (
    rf"(?<![0-9A-Fa-f:])(?=[0-9A-Fa-f:]*\d)(?:"
    rf"::(?:ffff(?::0{{1,4}})?:)?{_IPV4}"
    rf"|(?:{_H}:){{1,4}}:{_IPV4}"
    rf"|(?:{_H}:){{6}}{_IPV4}"
    rf"|fe80:(?::[0-9A-Fa-f]{{0,4}}){{0,4}}%[0-9A-Za-z]+"
    rf"|(?:{_H}:){{7}}{_H}"
    rf"|(?:{_H}:){{1,6}}:{_H}"
    rf"|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}"
    rf"|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}"
    rf"|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}"
    rf"|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    rf"|{_H}:(?::{_H}){{1,6}}"
    rf"|(?:{_H}:){{1,7}}:"
    rf"|:(?::{_H}){{1,7}}"
    rf")(?![0-9A-Fa-f:])"
)


def luhn_valid(text: str) -> bool:
    """Whether the digits of ``text`` end in a correct Luhn check digit."""
    digits = [int(c) for c in text if c.isdigit()]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


@dataclasses.dataclass(frozen=True)
class Preset:
    pattern: re.Pattern
    # Whether a match really is what the preset is for; None: every match is.
    confirm: Callable[[str], bool] | None = None


# In the order they are applied: card numbers before addresses, so that a
# hash written in place of one match is never read as another.
PRESETS: dict[str, Preset] = {
    "bearer_token": Preset(re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*")),
    "credit_card": Preset(re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), luhn_valid),
    "email": Preset(
        re.compile(
            r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
        )
    ),
    "ipv6": Preset(re.compile(_IPV6)),
    "ipv4": Preset(re.compile(rf"(?<![\d.]){_IPV4}(?!\.?\d)")),
}
