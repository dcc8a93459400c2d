"""The Drain miner on hand-made lines: clustering, the three-values rule, bounds, and its state."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings, strategies

from otelml.processors.drain.drain import MAX_LEAF_CLUSTERS, Drain, _is_bare, template_id_of
from otelml.processors.drain.masking import WILDCARD, tokens


def learn(miner: Drain, lines: list[str], key: tuple = ()) -> list:
    return [miner.add(line, key) for line in lines]


def test_lines_of_one_message_share_a_template_and_its_id():
    miner = Drain()
    first, second = learn(
        miner,
        [
            "Receiving block blk_1 src: /10.0.0.1:50010 dest: /10.0.0.2:50010",
            "Receiving block blk_-2 src: /10.0.0.3:50010 dest: /10.0.0.4:50010",
        ],
    )
    assert first is second
    assert first.template == "Receiving block blk_<*> src: /<*> dest: /<*>"
    assert first.template_id == template_id_of(first.template)
    assert first.size == 2


def test_json_lines_of_one_message_share_a_template_whatever_their_fields():
    miner = Drain()
    lines = [
        json.dumps({"level": "info", "msg": f"user {user} logged in", **extra})
        for user, extra in [(1, {}), (22, {"trace_id": "4bf92f35"}), (333, {"user": {"name": "bob"}})]
    ]
    first, second, third, other = learn(miner, [*lines, '{"level": "info", "msg": "user 4 logged out"}'])
    assert first is second is third is not other
    assert first.template == "user <*> logged in"


def test_messages_that_differ_in_a_word_of_a_short_line_stay_apart():
    miner = Drain()
    starting, ending, begin, end = learn(
        miner,
        [
            "Starting TrustedInstaller initialization.",
            "Ending TrustedInstaller initialization.",
            "PopulateComponentFamiliesKey - Begin",
            "PopulateComponentFamiliesKey - End",
        ],
    )
    assert len({id(starting), id(ending), id(begin), id(end)}) == 4


def test_a_long_line_may_differ_in_one_word():
    miner = Drain()
    lines = [
        "Read out cached package applicability for package: Package_for_KB3121255, ApplicableState: 112",
        "Read out cached package applicability for package: Microsoft-Hyper-V-Package, ApplicableState: 80",
    ]
    first, second = learn(miner, lines)
    assert first is second
    assert first.template == "Read out cached package applicability for package: <*> ApplicableState: <*>"


def test_lines_that_end_in_lists_of_different_lengths_share_a_template():
    miner = Drain()
    clusters = learn(
        miner,
        [
            "ask 10.0.0.1:50010 to delete blk_1",
            "ask 10.0.0.2:50010 to delete blk_2 blk_-3 blk_4",
            "ask 10.0.0.3:50010 to delete blk_5 blk_6",
        ],
    )
    assert len({id(each) for each in clusters}) == 1
    assert clusters[0].template == "ask <*> to delete blk_<*>"


def test_lines_that_end_in_lists_of_names_of_different_lengths_share_a_template():
    miner = Drain()
    lines = ["active users: alice", "active users: bob, carol", "active users: dave, erin, frank", "active users: gus"]
    clusters = learn(miner, [*lines, "connection closed, retrying", "connection closed, giving up"])
    assert len({id(each.current()) for each in clusters[:4]}) == 1
    assert clusters[0].current().template == "active users: <*>"
    # A phrase with a comma is a word of its message, which stays apart from the other.
    assert clusters[4] is not clusters[5] and clusters[4].template == "connection closed, retrying"


@pytest.mark.parametrize("order", [1, -1])
def test_a_value_that_only_some_lines_of_a_message_carry_is_left_out(order):
    miner = Drain()
    lines = ["Killed process 12 after timeout", "Killed process 13 (4) after timeout", "Killed process 14 after timeout"]
    clusters = learn(miner, lines[::order])
    assert len({id(each.current()) for each in clusters}) == 1
    assert clusters[-1].template == "Killed process <*> after timeout"
    assert all(miner.predict_one(line) == "Killed process <*> after timeout" for line in lines)


TWO_OPTIONAL_VALUES = [
    "session closed, 12 bytes sent, 40 bytes received",
    "session closed, 2048 bytes (2.0 KB) sent, 30 bytes received",
    "session closed, 10 bytes sent, 4096 bytes (4.0 KB) received",
    "session closed, 3072 bytes (3.0 KB) sent, 5120 bytes (5.0 KB) received",
]


@pytest.mark.parametrize("lines", list(itertools.permutations(TWO_OPTIONAL_VALUES)))
def test_values_that_only_some_lines_carry_are_left_out_in_any_number_and_order(lines):
    miner = Drain()
    clusters = learn(miner, list(lines))
    assert len({id(each.current()) for each in clusters}) == 1
    assert clusters[-1].current().template == "session closed, <*> sent, <*> received"


def test_a_one_word_template_takes_lines_that_only_add_bare_variables():
    miner = Drain()
    first, second = learn(miner, ["down (7) *64", "down"])
    assert first is second and first.template == "down"
    assert miner.predict_one("down (8) *32") == "down"


def test_a_line_of_bare_variables_finds_the_template_it_joined_after_that_grows_to_a_wildcard():
    # Found by the property test below: the line joined '*<*>' without its bare variables, then '<*>'
    # made that template '<*>', and the line's masked values counted as words the template lacked.
    miner = Drain()
    _, joined, _ = learn(miner, ["*64", "*64 (7) *64", "42"])
    assert joined.template == WILDCARD
    assert miner.predict_one("*64 (7) *64") == WILDCARD


def test_a_word_of_its_own_is_never_left_out():
    miner = Drain()
    with_user, without = learn(
        miner, ["authentication failure; rhost=10.0.0.1 user=root", "authentication failure; rhost=10.0.0.2"]
    )
    assert with_user is not without


def test_a_third_value_in_one_place_makes_it_a_variable():
    miner = Drain()
    alice, bob = learn(miner, ["user alice logged in from 10.0.0.1", "user bob logged in from 10.0.0.2"])
    assert alice is not bob  # two values may be two messages (Begin/End)
    [carol] = learn(miner, ["user carol logged in from 10.0.0.3"])
    assert carol.template == "user <*> logged in from <*>"
    assert len(miner) == 1
    assert {alice.absorbed_by, bob.absorbed_by} - {None} <= {carol} and carol.alive
    # Its id is the id of the survivor, kept from its first line on.
    assert carol.template_id in (alice.template_id, bob.template_id)
    assert miner.add("user dave logged in from 10.0.0.4") is carol


def test_two_values_in_one_place_stay_two_messages_however_many_clusters_hold_them():
    miner = Drain()
    lines = [
        "session opened for user nagios",
        "session closed for user root",
        "session closed for user nagios",
        "session opened for user mysql",
        "session opened for user root",
    ]
    clusters = [each.current() for each in learn(miner, lines)]
    # Before values were counted, the fifth line merged all five: three clusters differed from it in one place.
    opened = {id(each) for line, each in zip(lines, clusters) if "opened" in line}
    assert opened.isdisjoint(id(each) for line, each in zip(lines, clusters) if "closed" in line)
    assert clusters[-1].template == "session opened for user <*>"


def test_a_template_grown_more_general_takes_in_the_clusters_it_now_accepts():
    miner = Drain()
    # Two variables at once: the first line of "blue" starts a cluster of its own.
    [early] = learn(miner, ["copy beta to disk blue done"])
    red = learn(miner, ["copy alpha to disk red done", "copy gamma to disk red done", "copy delta to disk red done"])[-1]
    assert red.template == "copy <*> to disk red done" and early.alive
    # A third colour makes the colour a variable too: the template now accepts the early line word for word.
    final = learn(miner, ["copy zeta to disk green done", "copy zeta to disk yellow done"])[-1]
    assert final.template == "copy <*> to disk <*> done"
    assert len(miner) == 1 and final.size == 6
    assert not early.alive and early.absorbed_by is final
    assert miner.add("copy beta to disk blue done") is final


DAEMONS = ["cupsd", "crond", "sshd", "syslogd"]


def test_first_words_that_stand_before_two_messages_are_where_the_lines_come_from():
    miner = Drain()
    learn(miner, [f"{daemon} {event} succeeded" for daemon in DAEMONS for event in ("startup", "shutdown")])
    assert sorted(cluster.template for cluster in miner.clusters()) == ["<*> shutdown succeeded", "<*> startup succeeded"]
    # A source never seen joins the template; its id stays the one the lines had.
    [xinetd] = learn(miner, ["xinetd startup succeeded"])
    assert xinetd.template == "<*> startup succeeded" and xinetd.size == 5
    assert miner.predict_one("named shutdown succeeded") == "<*> shutdown succeeded"
    assert miner.predict_one("named restart succeeded") is None
    # The templates sit at the <*> route, and come back there from a snapshot.
    restored = Drain()
    restored.restore(json.loads(json.dumps(miner.snapshot())))
    assert restored.predict_one("ntpd startup succeeded") == "<*> startup succeeded"


def test_a_third_message_of_known_sources_merges_by_the_sources_its_template_remembers():
    miner = Drain()
    learn(miner, [f"{daemon} {event} succeeded" for daemon in DAEMONS for event in ("startup", "shutdown")])
    # The two templates no longer start with the daemons' words; they remember them as sources.
    assert all(cluster.sources == frozenset(DAEMONS) for cluster in miner.clusters())
    reload = learn(miner, [f"{daemon} reload failed badly" for daemon in DAEMONS[:3]])[-1]
    assert reload.template == "<*> reload failed badly" and reload.size == 3
    snapshot = json.loads(json.dumps(miner.snapshot()))
    restored = Drain()
    restored.restore(snapshot)
    assert {cluster.template: cluster.sources for cluster in restored.clusters()}["<*> reload failed badly"] == set(DAEMONS[:3])
    # A checkpoint written before sources were remembered (five fields a cluster) restores without them.
    older = Drain()
    older.restore([row[:5] for row in snapshot])
    assert sorted(c.template for c in older.clusters()) == sorted(c.template for c in restored.clusters())
    assert all(cluster.sources == frozenset() for cluster in older.clusters())


def test_first_words_before_one_message_only_stay_messages():
    miner = Drain()
    clusters = learn(miner, [f"{command} (command {number})" for number, command in enumerate(["boot", "wait", "halt", "kill"])])
    assert len({id(cluster) for cluster in clusters}) == 4
    assert miner.predict_one("boot (command 9)") == "boot (command <*>)"


def test_first_words_that_end_in_a_colon_name_sources_before_one_message():
    miner = Drain()
    units = ["apt-daily.service:", "logrotate.service:", "fstrim.service:"]
    clusters = learn(miner, [f"{unit} Succeeded." for unit in units])
    assert clusters[-1].template == "<*> Succeeded." and clusters[-1].size == 3
    assert miner.predict_one("man-db.service: Succeeded.") == "<*> Succeeded."
    # Unless every one of them ends in a colon, words before one message stay messages.
    assert len({id(cluster) for cluster in learn(miner, ["start: done", "stop: done", "halt done"])}) == 3


def test_a_source_seen_in_one_message_early_is_taken_in_when_its_template_moves():
    miner = Drain()
    # Each program first logs through a host of its own: lines that differ in two words at once.
    learn(
        miner,
        [
            f"{program} - {host}:443 open through proxy"
            for program, host in [("chrome.exe", "a.com"), ("firefox.exe", "b.com"), ("skype.exe", "c.com")]
        ],
    )
    learn(
        miner,
        [
            f"{program} - {host}:443 {event} through proxy"
            for program in ("chrome.exe", "firefox.exe", "skype.exe")
            for host in ("x.com", "y.com", "z.com")
            for event in ("open", "closed")
        ],
    )
    assert sorted(cluster.template for cluster in miner.clusters()) == [
        "<*> - <*> closed through proxy",
        "<*> - <*> open through proxy",
    ]
    assert sum(cluster.size for cluster in miner.clusters()) == 21


def test_lines_with_no_word_in_common_are_never_merged():
    miner = Drain()
    clusters = learn(miner, ["active", "blocked", "closing", "running", "warning"])
    assert len({id(c) for c in clusters}) == 5


def test_templates_are_learned_per_key():
    miner = Drain()
    learn(miner, ["user alice logged in", "user bob logged in", "user carol logged in"], key=("auth",))
    [other] = learn(miner, ["user dave logged in"], key=("billing",))
    assert miner.predict_one("user erin logged in", key=("auth",)) == "user <*> logged in"
    assert other.template == "user dave logged in"
    assert miner.predict_one("user erin logged in", key=("billing",)) is None


def test_predict_one_learns_nothing():
    miner = Drain()
    learn(miner, ["connected to db in 5 ms"])
    assert miner.predict_one("connected to db in 7 ms") == "connected to db in <*>"
    assert miner.predict_one("disk full") is None
    assert len(miner) == 1 and next(miner.clusters()).size == 1


def test_max_node_children_sends_further_first_words_to_the_wildcard_child():
    miner = Drain(max_node_children=3)
    learn(miner, ["alpha one x", "beta one x"])
    alpha, beta = miner.clusters()
    gamma, delta = learn(miner, ["gamma one x", "delta one x"])
    # alpha and beta have nodes of their own (two of three places: one is kept for <*>); later words share <*>.
    assert (alpha.path, beta.path) == ((3, "alpha"), (3, "beta"))
    assert gamma.path == delta.path == (3, "<*>")
    assert miner.predict_one("delta one x") == "delta one x"


def test_the_least_recently_used_cluster_goes_at_max_clusters():
    miner = Drain(max_clusters=2)
    first, second = learn(miner, ["disk full on /dev/sda1", "fan failure in rack 4"])
    learn(miner, ["disk full on /dev/sdb1"])  # uses the first again: the second is now the oldest
    [third] = learn(miner, ["power supply lost"])
    assert len(miner) == 2 and miner.evicted == 1
    assert first.alive and third.alive and not second.alive
    assert miner.predict_one("fan failure in rack 7") is None
    # Its words are gone from the tree, not only from the list.
    assert 5 not in next(iter(miner._trees.values())).root


def test_a_key_whose_last_cluster_goes_loses_its_tree():
    miner = Drain(max_clusters=1)
    learn(miner, ["payment accepted"], key=("billing",))
    learn(miner, ["user signed up"], key=("auth",))
    assert list(miner._trees) == [("auth",)]


def test_a_leaf_drops_its_least_seen_cluster_when_full():
    miner = Drain()
    common = learn(miner, ["job alpha done"] * 3)[0]
    for number in range(MAX_LEAF_CLUSTERS):
        miner.add(f"job {'abcdefghij'[number % 10]}{'klmnopqrst'[number // 10]} started")
    learn(miner, ["job zz finished"])
    assert common.alive
    assert max(len(leaf) for leaf in [node[None] for node in miner._trees[()].root[3].values()]) <= MAX_LEAF_CLUSTERS


def test_seeds_start_every_new_key():
    miner = Drain(seed_templates=("user <*> logged in from <*>",), seed_logs=("heartbeat ping 42",))
    [cluster] = learn(miner, ["user alice logged in from 10.0.0.1"], key=("auth",))
    assert cluster.template == "user <*> logged in from <*>" and cluster.size == 1
    assert miner.predict_one("heartbeat ping 7", key=("auth",)) == "heartbeat ping <*>"
    assert len(miner) == 2


def test_a_snapshot_restores_the_same_templates_ids_and_order():
    miner = Drain(max_clusters=3)
    lines = [
        "user alice logged in",
        "user bob logged in",
        "user carol logged in",
        "disk full on /dev/sda1",
        "fan failure in rack 4",
    ]
    before = {line: cluster.template_id for line, cluster in zip(lines, learn(miner, lines, key=("svc",)))}
    restored = Drain(max_clusters=3)
    restored.restore(json.loads(json.dumps(miner.snapshot())))
    assert [(c.template, c.template_id, c.size) for c in restored.clusters()] == [
        (c.template, c.template_id, c.size) for c in miner.clusters()
    ]
    for line in lines[2:]:
        assert restored.add(line, key=("svc",)).template_id == before[line]
    assert restored.add("user dave logged in", key=("svc",)).template_id == before["user carol logged in"]


def test_restoring_more_clusters_than_max_clusters_keeps_the_most_recent():
    miner = Drain()
    learn(miner, ["a b c", "d e f", "g h i"])
    smaller = Drain(max_clusters=2)
    smaller.restore(miner.snapshot())
    assert [c.template for c in smaller.clusters()] == ["d e f", "g h i"]


def test_tree_depth_below_three_is_refused():
    with pytest.raises(ValueError, match="tree_depth"):
        Drain(tree_depth=2)


# Lines from a small vocabulary: sources before a few messages, and loose words, so that every merge rule fires.
_SOURCES = strategies.sampled_from(["cupsd", "crond", "sshd", "ntpd", "up", "cupsd:", "crond:", "sshd:", "up:"])
_MESSAGES = strategies.sampled_from(["startup succeeded", "shutdown succeeded", "up 7 ok", "ok", "a <*> b"])
_WORDS = [
    "up",
    "down",
    "ok",
    "<*>",
    "7",
    "a",
    "b",
    "(7)",
    "*64",
    "up:",
    "a:",
    "a,",
    "[up,",
    "7,",
    "ok]",
    "k=Up",
    "Ok",
    "[",
    "]",
    "f(a",
    "b)",
]
_QUOTED = ['k="a \\"b\\" c"', '"p q"', "k='v w'", 'k="x', '\\"']
_LOOSE = strategies.lists(strategies.sampled_from(_WORDS + _QUOTED), min_size=1, max_size=4)
_LINES = strategies.lists(
    strategies.one_of(strategies.tuples(_SOURCES, _MESSAGES).map(" ".join), _LOOSE.map(" ".join)), max_size=80
)


@settings(max_examples=300, deadline=None)
@given(_LINES)
def test_every_line_lands_in_a_live_cluster_that_its_tree_holds(lines):
    miner = Drain(max_node_children=4)
    for line in lines:
        cluster = miner.add(line)
        # The template a line leaves with takes it word for word (maybe but for one or all of its bare variables), and
        # the line would find it again. Not always at a <*> route: a line may reach one through a full
        # node (max_node_children) that the same line's merges then empty, and a line of another first
        # word joins a template there only if at least half of its words are the template's own.
        words = tokens(line)
        assert cluster.alive and any(
            len(cluster.tokens) == len(each) and cluster.accepts(each)
            for each in [words, [words[0]] + [word for word in words[1:] if not _is_bare(word)]]
            + [words[:at] + words[at + 1 :] for at in range(1, len(words)) if _is_bare(words[at])]
        )
        assert miner.predict_one(line) is not None or WILDCARD in cluster.path
    clusters = list(miner.clusters())
    # Nothing is lost: every line is counted once, in a cluster found at its path.
    assert sum(cluster.size for cluster in clusters) == len(lines)
    for cluster in clusters:
        node = cluster.tree.root
        for step in cluster.path:
            node = node[step]
        assert cluster in node[None]
