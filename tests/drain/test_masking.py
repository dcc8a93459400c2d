"""Masking of variables on hand-made lines, with no per-system expressions."""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import given, strategies

from otelml.processors.drain import masking
from otelml.processors.drain.masking import mask, tokens


@pytest.mark.parametrize(
    "line, masked",
    [
        ("took 42 tries", "took <*> tries"),
        ("balance -17.5 EUR", "balance <*> EUR"),
        ("from 192.168.1.20:5432 and [fe80::1ff:fe23:4567:890a]", "from <*> and [<*>]"),
        ("trace 3fa85f64-5717-4562-b3fc-2c963f66afa6 done", "trace <*> done"),
        ("addr 0x7ffd5e8c and iar 001064fc", "addr <*> and iar <*>"),
        ("BSSID ab:cd:ef:12:34:56 and AA-BB-CC-DD-EE-0F", "BSSID <*> and <*>"),
        ("open /var/log/nginx/access.log failed", "open <*> failed"),
        ("open C:\\Windows\\System32\\drivers\\x.sys failed", "open <*> failed"),
        ("GET https://example.com/api/v1/users?id=7 200", "GET <*> <*>"),
        ("at 2024-05-01T10:00:00.123Z and 2024-05-01 10:00:00,5", "at <*> and <*> <*>"),
        ("node worker-7.eu-west-1.example.com down", "node <*> down"),
        ("block blk_-3544583377289625738 and rdd_2_3", "block blk_<*> and rdd_<*>"),
        ("domain root22_local full", "domain root<*>_local full"),
        # A key=value's value is a value, digits or not; quoted or not; the key stays.
        ('isScreenOn=true tag="RILJ" (class=Filter) x=1,y=no', "isScreenOn=<*> tag=<*> (class=<*>) x=<*>,y=<*>"),
        # Several words quoted after a key are one value; the message of msg= or message= is not a value.
        ("err=\"connection reset by peer\" tag='View Lock', n=2", "err=<*> tag=<*>, n=<*>"),
        # Quotes escaped inside a quoted value are part of it (klog), however many words it has.
        (
            '"Error syncing pod" err="failed to \\"StartContainer\\" for \\"web\\" with \\"image \\\\\\"a:1\\\\\\"\\"" pod="shop/web"',
            '"Error syncing pod" err=<*> pod=<*>',
        ),
        ("note='it\\'s done' n=2", "note=<*> n=<*>"),
        ('msg="Starting server" message=ready errmsg=lost', 'msg="Starting server" message=ready errmsg=<*>'),
        # Spaces around the equals sign change nothing; an empty value before another key stays empty.
        (
            "hit = true, mode= fast, ruser= rhost=h message = all done",
            "hit = <*>, mode= <*>, ruser= rhost=<*> message = all done",
        ),
        # A number with a unit of time or size is one value: programs choose the unit to suit the value.
        ("took 12ms, then 1.5s and 2m30s; sent 64K of 12MiB", "took <*>, then <*> and <*>; sent <*> of <*>"),
        # So is one with a space before its unit word, singular or plural, maybe after a bound.
        (
            "took 42 ms, 1 second, 3 seconds, <1 sec; wrote 1.2 KB (2 MB/s), 1 byte, 0 bytes of 2 bytesize",
            "took <*>, <*>, <*>, <*>; wrote <*> (<*>/s), <*>, <*> of <*> bytesize",
        ),
        ("/0/6E 2d-9 3rd", "<*> <*> <*>rd"),
        ("a == b and =>", "a == b and =>"),
        # Words without a digit are message, not variables: exception classes, host names without numbers.
        (
            "caused by java.lang.NullPointerException on db.example.com",
            "caused by java.lang.NullPointerException on db.example.com",
        ),
        ("to /default-rack", "to /default-rack"),
        ("HTTP/1.1 and/or", "HTTP/<*> and/or"),
    ],
)
def test_masks_variables_and_keeps_words(line, masked):
    assert mask(line) == masked


def test_tokens_split_at_white_space_and_extra_delimiters():
    assert tokens("a  b\tc") == ["a", "b", "c"]
    assert tokens("k1 v;k2 7", extra_delimiters=(";",)) == ["k<*>", "v", "k<*>", "<*>"]


@pytest.mark.parametrize(
    "line, words",
    [
        ("delete blk_1 blk_-2 blk_3 now", ["delete", "blk_<*>", "now"]),
        ("sessions 17, 18, 19", ["sessions", "<*>"]),
        ("to 10.0.0.1:1 10.0.0.2:1", ["to", "<*>"]),
        ("nodes node-1 0x1f <ok> node-2 0x2e <ok>", ["nodes", "node-<*>", "<*>", "<ok>"]),
        # Words without a variable repeat as they are, and different variables stay.
        ("closed closed by 10.0.0.1", ["closed", "closed", "by", "<*>"]),
        ("src: /10.0.0.1:5 dest: /10.0.0.2:5", ["src:", "/<*>", "dest:", "/<*>"]),
        ("x=1 y=2", ["x=<*>", "y=<*>"]),
    ],
)
def test_a_list_of_values_is_one_variable_whatever_its_length(line, words):
    assert tokens(line) == words


@pytest.mark.parametrize(
    "line, words",
    [
        ('opened "final report.doc" for 7', ["opened", '"final report.doc"', "for", "<*>"]),
        ("query 'SELECT a FROM b' took 5 tries", ["query", "'SELECT a FROM b'", "took", "<*>", "tries"]),
        ('<*> "GET /v2/a/b/c HTTP/1.1" 200', ["<*>", '"GET <*> HTTP/<*>"', "<*>"]),
        # Apostrophes quote nothing, and a quote left open is a word like any other.
        ("can't open user's file", ["can't", "open", "user's", "file"]),
        ('title "a b', ["title", '"a', "b"]),
    ],
)
def test_a_quoted_phrase_is_one_word(line, words):
    assert tokens(line) == words


_WORD = strategies.text(alphabet=string.ascii_letters + string.digits + "._-/:,;()[]+~\\", min_size=1, max_size=24)


@given(_WORD)
def test_the_shortcut_for_number_words_agrees_with_the_full_expression(word):
    expected = masking.VARIABLES.sub(masking.WILDCARD, word) if re.search(r"[\d/\\]", word) else word
    assert mask(word) == masking._BOOLEAN.sub(masking.WILDCARD, expected)


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ('{"ts": "2024-05-01T10:00:00Z", "level": "info", "msg": "user 42 logged in", "user": "alice"}', "user 42 logged in"),
        ('  {"level": "warn", "message": "cache cold", "msg": 7}\n', "cache cold"),
        (
            '{"msg": 42, "http": {"method": "GET", "peer": {"port": 80}}, "tags": ["a"], "empty": {}}',
            "msg=<*> http.method=<*> http.peer.port=<*> tags=<*> empty=<*>",
        ),
        ('{"inner": {"msg": "not the message"}}', "inner.msg=<*>"),
        ('{"msg": " ", "code": 7}', "msg=<*> code=<*>"),  # an empty message is none
    ],
)
def test_a_json_object_is_templated_as_its_message_else_its_field_names(line, text):
    assert masking.structured_text(line) == text


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ('{"version": "1.1", "host": "db-1", "short_message": "Backup finished", "_user": "bob"}', "Backup finished"),  # GELF
        ('{"@t": "2024-05-01", "@mt": "Processed {OrderId}", "@m": "Processed 7", "OrderId": 7}', "Processed {OrderId}"),
        ('{"@t": "2024-05-01", "@m": "Processed 7", "OrderId": 7}', "Processed 7"),  # Serilog, rendered only
        ('{"__REALTIME_TIMESTAMP": "1714557600", "_PID": "1", "MESSAGE": "Started Session 7."}', "Started Session 7."),
        ('{"event": "payment declined", "order_id": 7}', "payment declined"),  # structlog
        ('{"event": "payment declined", "level": "info", "msg": "order 7 declined"}', "order 7 declined"),  # msg first
        ('{"event": {"action": "login"}, "user": "bob"}', "event.action=<*> user=<*>"),  # an event object is no message
        ('{"log": "GET /cart 200\\n", "stream": "stdout", "time": "2024-05-01T10:00:00Z"}', "GET /cart 200\n"),  # Docker
        ('{"log": "{\\"msg\\": \\"cache warmed\\", \\"n\\": 3}\\n", "stream": "stderr"}', "cache warmed"),
        ('{"log": "level=info msg=ready\\n", "kubernetes": {"pod_name": "web-1"}}', "ready"),  # fluent-bit, logfmt inside
    ],
)
def test_other_loggers_message_fields_are_read_best_first(line, text):
    assert masking.structured_text(line) == text


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ('time=2024-05-01T10:00:00Z level=info msg="user 42 logged in" user=bob', "user 42 logged in"),
        ("level=info msg=ready trace_id=4bf92f35", "ready"),
        ('level=warn message="retrying \\"payments\\" in 5s" attempt=3', 'retrying "payments" in 5s'),
        # Not logfmt: words outside a pair, a quote inside a bare value, no message, or past the bound.
        ('sending msg="hello there" to peer', 'sending msg="hello there" to peer'),
        ('level=info msg=a"b"', 'level=info msg=a"b"'),
        ("level=info user=bob", "level=info user=bob"),
        ('level=info msg="" user=bob', 'level=info msg="" user=bob'),
        ("msg=x " + "k=v " * masking.MAX_LOGFMT, "msg=x " + "k=v " * masking.MAX_LOGFMT),
    ],
)
def test_a_logfmt_line_is_templated_as_its_message(line, text):
    assert masking.structured_text(line) == text


def test_a_record_without_a_message_names_its_first_fields_only():
    fields = {f"field{number}": number for number in range(3 * masking.MAX_FIELDS)}
    assert masking.fields_text(list(fields.items())).split() == [f"field{number}=<*>" for number in range(masking.MAX_FIELDS)]


@pytest.mark.parametrize(
    "line",
    [
        '{"level": "info", "msg": "cut short',  # not JSON
        "[1, 2, 3]",  # JSON, but no object
        "{}",  # no fields: the text is all there is
        "{user} logged in {when}",
        '{"a": ' * 3000 + "1" + "}" * 3000,  # nested deeper than the parser goes, within the size bound
        '{"msg": "' + "x" * masking.MAX_JSON + '"}',  # past the bound
    ],
)
def test_other_lines_are_masked_as_text(line):
    assert masking.structured_text(line) == line


_JSON = strategies.recursive(
    strategies.none() | strategies.booleans() | strategies.floats(allow_nan=False) | strategies.integers() | strategies.text(),
    lambda children: strategies.lists(children, max_size=3) | strategies.dictionaries(strategies.text(), children, max_size=3),
    max_leaves=12,
)


_KEYS = strategies.sampled_from(list(masking._MESSAGE_FIELDS)) | strategies.text()


@given(strategies.dictionaries(_KEYS, _JSON, min_size=1, max_size=5), strategies.booleans())
def test_any_json_object_gives_its_message_or_a_masked_value_per_field(fields, compact):
    line = json.dumps(fields, separators=(",", ":") if compact else None)
    text = masking.structured_text(line)
    messages = sorted(
        (rank, key)
        for key, rank in masking._MESSAGE_FIELDS.items()
        if isinstance(fields.get(key), str) and not fields[key].isspace() and fields[key]
    )
    if messages:
        rank, key = messages[0]
        assert text == (masking.structured_text(fields[key]) if key == "log" else fields[key])
    else:
        assert text.count("=<*>") >= len(fields)  # a word or more per field, each known by its name
    tokens(text)  # and masking takes what it gives, whatever the keys hold


@pytest.mark.parametrize(
    "line, words",
    [
        ("active users: alice, bob, carol", ["active", "users:", "alice, bob, carol"]),
        ("members: [alpha, bravo] after election", ["members:", "[alpha, bravo]", "after", "election"]),
        ("hosts web7, db, cache; done", ["hosts", "web<*>, db, cache;", "done"]),
        # A phrase with a comma joins too, the same in every line of its message.
        ("closed, retrying in 5 s", ["closed, retrying", "in", "<*>", "s"]),
        # Values are a list of values, keys and names before a colon are no names of a list, nor is a dangling comma.
        ("sent 1, 2, 3 items", ["sent", "<*>", "items"]),
        ("x=1, y=2", ["x=<*>,", "y=<*>"]),
        ("Package_A, ApplicableState: 80", ["Package_A,", "ApplicableState:", "<*>"]),
        ("ends with alice, bob,", ["ends", "with", "alice,", "bob,"]),
        ("state (n.leader), LOOKING", ["state", "(n.leader),", "LOOKING"]),
    ],
)
def test_a_list_of_names_is_one_word(line, words):
    assert tokens(line) == words


@pytest.mark.parametrize(
    "line, masked",
    [
        ("Server environment:java.vendor=Oracle Corporation", "Server environment:java.vendor=<*>"),
        ("vendor=Azul Systems, Inc. os.name=Windows Server 2019 arch=amd64", "vendor=<*> os.name=<*> arch=<*>"),
        ("vm=Java HotSpot(TM) 64-Bit Server VM", "vm=<*>"),
        # Capitalised words the message goes on after begin the message: its end, a bracket or a key ends a value.
        ("level=INFO Starting server on port 80", "level=<*> Starting server on port <*>"),
        ("host=Web01 Connection refused", "host=<*> Connection refused"),
        ("License of company=Acme Corp expired, at 5", "License of company=<*> Corp expired, at <*>"),
        # A word with a key of its own and a message key's value end it or start none.
        ("a=Foo Bar=1 C", "a=<*> Bar=<*> C"),
        ("msg=Hello World again", "msg=Hello World again"),
        ("sleepTime=1000 MILLISECONDS)", "sleepTime=<*> MILLISECONDS)"),
    ],
)
def test_a_value_of_capitalised_words_outside_quotes_is_one_value(line, masked):
    assert mask(line) == masked


@pytest.mark.parametrize(
    "line, masked",
    [
        ("feature x enabled true for tenant 5", "feature x enabled <*> for tenant <*>"),
        ("from cache: False. (TRUE), false,", "from cache: <*>. (<*>), <*>,"),
        # Only a word of its own: in a name or a dotted word it is not a boolean.
        (
            "is_true false_start trueness a.true true.x false-positive",
            "is_true false_start trueness a.true true.x false-positive",
        ),
    ],
)
def test_a_boolean_is_a_value(line, masked):
    assert mask(line) == masked


@pytest.mark.parametrize(
    "line, words",
    [
        # Spaces that pad a value in brackets part no words.
        ("[    3.141592] usb 1-1: new device", ["[<*>]", "usb", "<*>:", "new", "device"]),
        ("[12345.678901] usb 1-1: new device", ["[<*>]", "usb", "<*>:", "new", "device"]),
        ("[  OK  ] Started foo.", ["[OK]", "Started", "foo."]),
        # A call's arguments, a stack frame's place, are one word with the name before them.
        ("\tat com.acme.Foo.invoke0(Native Method)", ["at", "<*>(Native Method)"]),
        ("at com.acme.Foo.run(Unknown Source),", ["at", "com.acme.Foo.run(Unknown Source),"]),
        (
            "Function=int SendPacket(IdoUdpMgr*, Personality*) at 5",
            ["Function=<*>", "SendPacket(IdoUdpMgr*, Personality*)", "at", "<*>"],
        ),
        # Brackets after a space, or never closed, join nothing.
        ("Killed process 5 (java) now", ["Killed", "process", "<*>", "(java)", "now"]),
        ("x (a b) y(z w", ["x", "(a", "b)", "y(z", "w"]),
    ],
)
def test_padding_in_brackets_and_a_call_s_arguments_split_no_words(line, words):
    assert tokens(line) == words
