"""Masking the variable parts of a log line before it is clustered, with no per-system expressions.

Every part that names one thing among many becomes ``<*>``: UUIDs, URLs,
file paths (Unix ones of two or more parts, Windows ones), ``0x`` hex
numbers, MAC addresses, dotted names of three or more parts holding a digit
(host names, IP addresses, versions), numbers and hex words (runs of digits
and hex letters holding a digit, with the separators of dates, times and
addresses between them: ``2005-06-03-15.42.50``, ``10.0.0.1:80``,
``0245b64c``), durations and sizes with their unit (``12ms``, ``1.5s``,
``64K``, and after a space: ``1.2 KB``, ``5 seconds``), what digits are
left inside words (``root22_local`` -> ``root<*>_local``), and the value
of a ``key=value`` (``state=<*>``): the key names a field, so what follows
it is a value, even a word (``isScreenOn=true``, ``=false``) or a quoted
phrase (``err="no route to host"``), with spaces around the ``=`` or not
(``hit = true``); but the value of ``msg=`` and ``message=`` is a logfmt
line's message, and is left to the other rules. Other words without a
digit are left alone: ``java.lang.NullPointerException`` stays, so a new
exception class is a new template. But a value outside quotes that starts
with a capital letter goes on over the capitalised words after it to the
end of the line, a bracket or another key (``java.vendor=Oracle Corporation``), and a boolean word is a value
wherever it stands (``enabled true``). A structured line, a JSON object or a
logfmt line, is masked as its message field, or the names of its fields
(:func:`structured_text`).

Rules then keep a value of any length in one place, since Drain groups
lines by their word count first. A quoted phrase of several words
(``"final report.doc"``, ``'SELECT a FROM b'``) is one word; a quote right
after a letter (``can't``, ``user's``) opens nothing. And a list of values
is one variable: when the masked words repeat a group of up to three words
that holds a variable (``blk_<*> blk_<*>``, ``<*>, <*>, <*>``), the run
keeps one group. A list of names (``alice, bob, carol``) is one word, and so
are a call's arguments with its name (``invoke0(Native Method)``); spaces
that pad a value inside brackets (``[    3.141592]``) part no words.

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

import json
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

WILDCARD = "<*>"

_HEX = "[0-9a-fA-F]"
# What joins the parts of one value: dates, times, IPv4 and IPv6 addresses, ports, version numbers.
_JOIN = r"(?:::|[.:,/_-])"
_PATH_PART = r"""[^\s/\\'"()\[\]{}<>]"""
# The value of these keys (logfmt's, slog's, logrus's) is the message itself, what a template is made of: its
# words are left to the other rules.
_MESSAGE_KEYS = ("msg", "message")
# What a value unquoted ends at: white space, punctuation that closes or separates, a quote.
_VALUE_CHAR = r"""[^\s,;()\[\]{}<>"']"""
# Where the value of a key=value starts: after ``key=``, but for a message's key.
_NOT_AFTER_MESSAGE_KEY = "".join(rf"(?<!\b{key}=)" for key in _MESSAGE_KEYS)
_VALUE_START = r"(?<=\w=)" + _NOT_AFTER_MESSAGE_KEY
# A duration or a size with its unit (``850µs``, ``1.5s``, Go's ``2m30s``, ``64K``, ``12MiB``): programs pick the
# unit that suits the value, so ``took 12ms`` and ``took 1.5s`` are one message.
_TIME_UNIT = "(?:ns|us|µs|ms|s|m|h)"
_QUANTITY = rf"(?<![\w.])\d+(?:\.\d+)?(?:{_TIME_UNIT}(?:\d+(?:\.\d+)?{_TIME_UNIT})*|d|[kKMGTP]i?[Bb]?|B)(?!\w|{_JOIN}[0-9A-Za-z])"
# The same with a space before a unit word, which may change with the value or be singular (``(1.16 KB)`` beside
# ``(2.3 MB)``, ``1 second`` beside ``5 seconds``), and maybe a bound before it (``<1 sec``): one value.
_UNIT_WORD = "(?:[KMGTP]?i?B|bytes?|[nuµm]s|secs?|seconds?|mins?|minutes?|hours?|hrs?|days?)"
_SPACED_UNIT = rf" {_UNIT_WORD}(?![\w.]\w)"
_SPACED_QUANTITY = rf"(?<![\w.<>~])[<>~]?\d+(?:\.\d+)?{_SPACED_UNIT}"
VARIABLES = re.compile(
    "|".join(
        [
            rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",  # UUID
            r"[A-Za-z][A-Za-z0-9+.-]*://\S+",  # URL
            rf"(?<![\w.~:/-])[\w.~-]*(?:/{_PATH_PART}+){{2,}}/?",  # path: two or more slashes
            rf"(?<![\w.\\])(?:[A-Za-z]:)?[\w.~-]*(?:\\+{_PATH_PART}+){{2,}}\\?",  # Windows path, registry key
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?",  # ISO 8601 time
            _QUANTITY,  # a number with a unit of time or size
            _SPACED_QUANTITY,  # the same, a space before the unit
            rf"(?<![0-9A-Za-z])0[xX]{_HEX}+(?![0-9A-Za-z])",  # 0x hex number
            rf"(?<![0-9A-Za-z:-]){_HEX}{{2}}(?:[:-]{_HEX}{{2}}){{5}}(?![0-9A-Za-z:-])",  # MAC address
            # A number or hex word, and what joins several into one value (dates, times, addresses).
            rf"(?<![0-9A-Za-z])[-+]?(?={_HEX}*\d){_HEX}+(?:{_JOIN}(?={_HEX}*\d){_HEX}+)*(?![0-9A-Za-z])",
            r"(?<![\w.-])(?=[\w.-]*\d)[\w-]+(?:\.[\w-]+){2,}",  # host name, version
            r"\d+(?:[.:,/_-]\d+)*",  # digits inside a word
            rf"{_VALUE_START}{_VALUE_CHAR}+",  # the value of a key=value (quoted ones: below)
        ]
    )
)
# A quoted value, of one word or several (``err="connection reset by peer"``, ``tag='View Lock'``), is one value,
# quotes escaped inside it included (klog's ``err="failed to \"StartContainer\" for \"web\""``).
_QUOTED_VALUE = re.compile(rf"""{_VALUE_START}(?:"[^"\\\n]*(?:\\.[^"\\\n]*)*"|'[^'\\\n]*(?:\\.[^'\\\n]*)*')""")
# A value of several words outside quotes, as names and titles are written (``java.vendor=Oracle Corporation``,
# ``os.name=Windows Server 2019``, ``vm=OpenJDK 64-Bit Server VM``): a value that starts with a capital letter goes on
# over the words after it that start with one or with a digit and hold no equals sign, when the line, a bracket or
# another ``key=`` ends them. Words that the message goes on after are the message's: in ``level=INFO Starting
# server`` and ``host=Web01 Connection refused`` the capitalised words begin it (``company=Acme Corp expired`` is
# a template per length of the name). Written from its ``=``, a literal the search skips to.
_TITLED_VALUE = re.compile(
    rf"""=(?<=\w=){_NOT_AFTER_MESSAGE_KEY}[A-Z]{_VALUE_CHAR}*(?: [A-Z0-9][^\s="']*(?!\S))+(?=\s*$|\s+[\w.-]+=|[;)\]}}])"""
)
# The value of a ``key = value`` or ``key= value``: the same but for the spaces; the key is group 1. A word that
# holds an equals sign is no value: ``ruser= rhost=host`` is an empty value, then another key.
_SPACED_VALUE = re.compile(rf"\b(\w+) ?= +(?!{_VALUE_CHAR}*=)({_VALUE_CHAR}+)")
# A boolean is how a program prints a value, never how it names a message (``enabled true``, ``from cache: False``):
# without a key before it, its two values would be two templates, as the three-values rule needs three.
_BOOLEAN = re.compile(r"(?<![\w.-])(?:true|false|True|False|TRUE|FALSE)(?![\w-]|\.\w)")
# Every variable above holds a digit, a slash, a backslash or an equals sign: only words with one are looked at
# (with the unit word after a number, if any).
_CANDIDATE = re.compile(rf"(?<!\S)\S*[\d/\\=]\S*(?:{_SPACED_UNIT})?")
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
        # Two slashes make a path of the whole word (``/0/6E``), which only the full expression knows.
        number = (_NUMBER.fullmatch(word) or _NAMED_NUMBER.fullmatch(word)) if word.count("/") < 2 else None
        masked = number[1] + WILDCARD + number[2] if number else VARIABLES.sub(WILDCARD, word)
        if len(_masked_words) >= WORD_CACHE:
            _masked_words.clear()
        _masked_words[word] = masked
    return masked


def _spaced_value(match: re.Match) -> str:
    key = match[1]
    return match[0] if key in _MESSAGE_KEYS else match[0][: match.start(2) - match.start()] + WILDCARD


def mask(text: str) -> str:
    """``text`` with each variable part replaced by ``<*>``."""
    if '="' in text or "='" in text:
        text = _QUOTED_VALUE.sub(WILDCARD, text)
    if "=" in text:
        text = _TITLED_VALUE.sub("=" + WILDCARD, text)
    if "= " in text:
        text = _SPACED_VALUE.sub(_spaced_value, text)
    text = _CANDIDATE.sub(_mask_word, text)
    if "rue" in text or "alse" in text or "RUE" in text or "ALSE" in text:  # cheaper than the expression
        text = _BOOLEAN.sub(WILDCARD, text)
    return text


# Structured lines are read up to these sizes, longer ones are masked as text: bounds on what a hostile body costs
# (30 KB of small nested objects: 0.6 ms to parse; a 4 KB logfmt value: 0.2 ms). A JSON line with a stack trace
# costs little (0.1 ms for 60 KB), but is rarely this long; logfmt lines are shorter still.
MAX_JSON = 32768
MAX_LOGFMT = 4096
# Fields named at most in the template of a record without a message: more than its first 2,048 characters hold.
MAX_FIELDS = 256


# A logfmt line: key=value pairs and nothing else, a value quoted (with backslash escapes) or one word. Pairs are
# parted by white space, so a line is read one way only (no backtracking over where a value ends).
_LOGFMT_VALUE = r'(?:"(?:[^"\\]|\\.)*"|[^\s"]*)'
_LOGFMT = re.compile(rf"\s*[\w.-]+={_LOGFMT_VALUE}(?:\s+[\w.-]+={_LOGFMT_VALUE})*\s*")
_LOGFMT_MESSAGE = re.compile(rf'(?<!\S)(?:{"|".join(_MESSAGE_KEYS)})=(?:"((?:[^"\\]|\\.)*)"|([^\s"]*))')


def structured_text(line: str) -> str:
    """``line``'s message when it is a structured record (a JSON object, a logfmt line), else ``line`` itself.

    Structured loggers (zap, pino, winston, logrus, Go's slog) print one JSON
    object or one logfmt line a line, the message in one of its fields: see
    :func:`fields_text`.

    >>> structured_text('{"level":"info","msg":"user 42 logged in","user":{"id":42}}')
    'user 42 logged in'
    >>> structured_text('time=2024-05-01T10:00:00Z level=info msg="user 42 logged in" user=bob')
    'user 42 logged in'
    >>> structured_text('{"level":"info", "msg":')  # not JSON: masked as text
    '{"level":"info", "msg":'
    """
    stripped = line.strip()
    if stripped.startswith("{") and stripped.endswith("}") and len(stripped) <= MAX_JSON:
        try:
            fields = json.loads(stripped)
        except (ValueError, RecursionError):
            return line
        return fields_text(list(fields.items())) if isinstance(fields, dict) and fields else line
    if "=" in line and len(line) <= MAX_LOGFMT and _LOGFMT.fullmatch(line):
        message = _LOGFMT_MESSAGE.search(line)
        if message is not None:
            quoted, bare = message.groups()
            text = bare if quoted is None else quoted.replace('\\"', '"')
            if text.strip():
                return text
    return line


# The fields whose text is a structured record's message, best first: most loggers' (logfmt's keys: zap, slog,
# logrus, pino, bunyan, winston), journald's JSON export, GELF's, Serilog's compact JSON (its message template, else
# the message rendered), structlog's, and a container's own line as its runtime's log driver wrapped it (Docker's
# json-file, fluent-bit's records: ``log``), which may itself be structured.
_MESSAGE_FIELDS = {
    key: rank for rank, key in enumerate((*_MESSAGE_KEYS, "MESSAGE", "short_message", "@mt", "@m", "event", "log"))
}
_WRAPPED_LINE = _MESSAGE_FIELDS["log"]


def _json_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _json_fields(value: object) -> list[tuple[str, object]] | None:
    return list(value.items()) if isinstance(value, dict) else None


def fields_text(
    fields: Sequence[tuple[str, Any]],
    text_of: Callable[[Any], str | None] = _json_text,
    fields_of: Callable[[Any], Sequence[tuple[str, Any]] | None] = _json_fields,
) -> str:
    """What a structured record is templated as: its message, else its fields as a logfmt line of keys.

    ``fields`` are the record's (name, value) pairs; ``text_of`` gives a
    value's text if it is text, ``fields_of`` a value's own fields if it is
    an object (JSON values by default: an OTLP map body passes its own, so
    that it is read where it lies). The message is the text of the
    top-level field that comes first in :data:`_MESSAGE_FIELDS` and has
    some (``msg``, ``message``, ... ``log``, the line a container runtime
    wrapped, itself read as a structured line); the other fields are
    context (a ``user``, an ``error``, a ``trace_id`` on some lines only)
    and are left out. A record without a message is known by its fields'
    names, each with a value masked as after any other ``key=`` (see
    :func:`mask`); a nested object's by their path.

    >>> fields_text([("level", "error"), ("message", "disk /dev/sda1 full"), ("host", "db")])
    'disk /dev/sda1 full'
    >>> fields_text([("log", '{"msg":"cache warmed","entries":12}\\n'), ("stream", "stderr")])
    'cache warmed'
    >>> fields_text([("action", "login"), ("user", {"name": "bob", "roles": ["a", "b"]})])
    'action=<*> user.name=<*> user.roles=<*>'
    """
    best, message = len(_MESSAGE_FIELDS), ""
    for key, value in fields:
        rank = _MESSAGE_FIELDS.get(key, best)
        if rank < best:
            text = text_of(value)
            if text and not text.isspace():
                best, message = rank, text
    if message:
        # A wrapped line is shorter than the record that wraps it, so its own wrapped lines end.
        return structured_text(message) if best == _WRAPPED_LINE else message
    words: list[str] = []
    # Objects being walked, each with its path and what is left of its fields: no recursion, whatever the depth.
    stack = [("", iter(fields))]
    while stack and len(words) < MAX_FIELDS:
        path, items = stack[-1]
        for key, value in items:
            name = f"{path}{key}"
            nested = fields_of(value)
            if nested:
                stack.append((f"{name}.", iter(nested)))
                break
            words.append(f"{name}={WILDCARD}")
            if len(words) == MAX_FIELDS:
                break
        else:
            stack.pop()
    return " ".join(words)


def tokens(text: str, extra_delimiters: tuple[str, ...] = ()) -> list[str]:
    """The masked words of ``text``: split at white space and at each of ``extra_delimiters``."""
    masked = mask(text)
    for delimiter in extra_delimiters:
        masked = masked.replace(delimiter, " ")
    if "[ " in masked or "( " in masked or " ]" in masked or " )" in masked:
        masked = _PADDING.sub("", masked)
    phrases = '"' in masked or "'" in masked or ("(" in masked and _SPACED_CALL.search(masked) is not None)
    words = [word[0] for word in _WORD.finditer(masked)] if phrases else masked.split()
    if masked.count(WILDCARD) > 1:  # a list of values holds two variables or more
        words = collapse_repeats(words)
    return join_name_lists(words) if ", " in masked else words


# Spaces just inside brackets pad a value to a width (dmesg's ``[    3.141592]`` beside ``[12345.678901]``, systemd's
# ``[  OK  ]``): they part no words.
_PADDING = re.compile(r"(?<=[\[(]) +| +(?=[\])])")
# A name and its arguments in brackets.
_CALL = r"""(?:\w|<\*>)\([^()"'\n]*\)"""
# A word, or a quoted phrase as one word (a title, a query, a file name with spaces), so that a phrase of
# any length holds one place. The quote must not follow a letter: "can't" and "user's" quote nothing. So are
# the words in brackets right after a name, a call's arguments or where a frame of a stack trace is
# (``invoke0(Native Method)``, ``SendPacket(IdoUdpMgr*, BGLPersonality*)``).
_WORD = re.compile(rf"""(?<![\w"'])(["'])[^"'\s]*\s[^"'\n]*\1(?!\w)|[^\s"'()]*{_CALL}\S*|\S+""")
# A call with a space in its brackets: only a line that holds one needs _WORD for its calls.
_SPACED_CALL = re.compile(r"""\((?<=[\w>]\()[^()"'\s]*\s[^()"'\n]*\)""")
# A repeated group of up to this many words holding a variable is one list of values.
MAX_REPEATED_GROUP = 3
# A list of names: words that hold a letter, each but the last followed by a comma, maybe in brackets
# (``alice, bob, carol``, ``[prod, metrics]``). A name before a colon ends no list: it names what follows
# (``Package_A, ApplicableState: 112``).
_NAME = r"(?=[^A-Za-z]*[A-Za-z])[\w.-]*(?:<\*>[\w.-]*)*"
_LISTED_NAME = re.compile(rf"[\[(]?{_NAME},")
_LAST_NAME = re.compile(rf"{_NAME}[\])]?;?")
# What names this masking in a checkpoint: templates learned under other masking are not reused.
SIGNATURE = (
    f"{VARIABLES.pattern} {_QUOTED_VALUE.pattern} {_TITLED_VALUE.pattern} {_SPACED_VALUE.pattern} {_BOOLEAN.pattern}"
    f" {_PADDING.pattern} {_WORD.pattern}"
    f" lists of groups up to {MAX_REPEATED_GROUP}, lists of {_LISTED_NAME.pattern} {_LAST_NAME.pattern}, messages of JSON objects up to {MAX_JSON} and of {_LOGFMT.pattern}"
    f" up to {MAX_LOGFMT}, {MAX_FIELDS} fields, messages in {list(_MESSAGE_FIELDS)}"
)


def _repeats(words: list[str]) -> bool:
    """Whether some group of up to :data:`MAX_REPEATED_GROUP` words comes twice in a row: a quick look first."""
    keys = [word.rstrip(",;") for word in words]
    for size in range(1, MAX_REPEATED_GROUP + 1):
        run = 0  # words in a row that equal the word ``size`` before them
        for same in map(operator.eq, keys, keys[size:]):
            run = run + 1 if same else 0
            if run >= size:
                return True
    return False


def collapse_repeats(words: list[str]) -> list[str]:
    """``words`` with each run of a repeated group of words that holds a variable kept once.

    A list of values (``blk_1 blk_2 blk_3``, ``1, 2, 3``) is one variable
    whatever its length: the group is compared without a trailing comma or
    semicolon, and the run's last group is kept.

    >>> collapse_repeats("delete blk_<*> blk_<*> blk_<*> now".split())
    ['delete', 'blk_<*>', 'now']
    >>> collapse_repeats("sessions <*>, <*>, <*> expired".split())
    ['sessions', '<*>', 'expired']
    >>> collapse_repeats("node <*> ok node <*> ok".split())
    ['node', '<*>', 'ok']
    >>> collapse_repeats("closed closed".split())
    ['closed', 'closed']
    """
    if not _repeats(words):
        return words
    kept: list[str] = []
    keys: list[str] = []  # the kept words without a trailing comma or semicolon
    for word in words:
        kept.append(word)
        keys.append(word.rstrip(",;"))
        end = len(keys)
        for size in range(1, min(MAX_REPEATED_GROUP, end // 2) + 1):
            start = end - 2 * size
            if (
                keys[start] == keys[end - size]  # a cheap look first: most groups differ in their first word
                and keys[start : end - size] == keys[end - size :]
                and any(WILDCARD in key for key in keys[end - size :])
            ):
                del kept[start : end - size], keys[start : end - size]
                break
    return kept


def join_name_lists(words: list[str]) -> list[str]:
    """``words`` with each list of two or more names joined into one word.

    A list of names (users, groups, plugins, hosts without a digit) varies
    in length like a list of values, but its words are not masked: as one
    word it holds one place, and three different lists there make it a
    variable like any other word (see :data:`~.drain.VARIABLE_VALUES`). A
    phrase with a comma (``closed, retrying``) joins too, and stays the
    same word in every line of its message.

    >>> join_name_lists("active users: alice, bob, carol".split())
    ['active', 'users:', 'alice, bob, carol']
    >>> join_name_lists("members: [alpha, bravo] after election".split())
    ['members:', '[alpha, bravo]', 'after', 'election']
    >>> join_name_lists("sent <*>, <*>, <*> bytes".split())
    ['sent', '<*>,', '<*>,', '<*>', 'bytes']
    """
    joined: list[str] = []
    start = 0
    while start < len(words):
        end = start  # the run of names with a comma from ``start`` ends before ``end``
        while end + 1 < len(words) and words[end][-1] == "," and _LISTED_NAME.fullmatch(words[end]):
            end += 1
        if end > start and _LAST_NAME.fullmatch(words[end]):
            joined.append(" ".join(words[start : end + 1]))
        else:
            # No list starts inside the run either: it would end at the same word.
            joined.extend(words[start : end + 1])
        start = end + 1
    return joined
