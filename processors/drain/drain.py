"""Drain: online log templates from a fixed-depth parse tree, one tree per key, bounded by an LRU of clusters.

A line is masked and split into words (:mod:`.masking`), then goes down its
key's tree: first by its number of words, then by its first
``tree_depth - 3`` words (a node with ``max_node_children`` children sends
new words to its ``<*>`` child). At the leaf it joins the most similar
cluster whose similarity reaches ``merge_threshold`` (the cluster's
template then gets ``<*>`` wherever the two differ) or starts a new one.

Similarity is the share of the line's words that the template accepts:
the same word, or a ``<*>`` the template already has. Words masked as
variables are not counted: they say nothing about which template a line
belongs to. So ``merge_threshold: 0.88`` lets a line of nine or more
unmasked words differ from a template in one of them, and asks a shorter
line to match every word it has. Two templates that differ in one word may
well be two messages (``Starting``/``Ending``, ``bytes``/``values``); but when
a new line starts a cluster that differs in the same one word from others
of its leaf, and :data:`VARIABLE_VALUES` different words stand there, that
word is a variable (``user alice``, ``user bob``, ``user carol``): those
clusters are merged into one with ``<*>`` there. Values are counted, not
clusters: ``session opened`` and ``session closed`` stay two messages
however many clusters each has. Whenever a template grows more general, it
takes in the clusters of its leaf that it now accepts word for word: lines
that started clusters of their own before the variable was known.

The first word routes lines, and it is usually the message's own (``boot
(command <*>)``, ``wait (command <*>)``). But it may name where the line
comes from (``cupsd startup succeeded``, ``crond startup succeeded``): then
the same three or more first words stand before two different messages
(``... shutdown succeeded``), and each message's clusters merge into one
with ``<*>`` first; one message is enough when each of those words ends in
a colon (``logrotate.service: Succeeded.``). Such a template remembers its
``sources`` (so that a third message from three of them merges at once),
moves to its node's ``<*>`` child, takes in the clusters of other first
words it accepts, and a line whose own route has no template for it joins
it there when it accepts every word of the line and at least half the
line's unmasked words are its own (so that ``<*> <*> <*>`` takes in
nothing from elsewhere).

Some lines of a message carry a value that others do not (``chrome.exe *64
- ...`` beside ``chrome.exe - ...``). A line that no template takes as it
is joins one that takes it with one of its bare variables left out (a
masked value in punctuation, ``*<*>`` or ``(<*>)``, never the first word),
or one whose template has one bare variable more than the line, which then
loses that word for good; failing that, the line and the templates are
compared without any of their bare variables, so that a message with several
values each on some lines only is one template.

A line seen before (the same text, for the same key) goes straight to the
cluster it joined, while that cluster lives. All clusters of all keys share
one least-recently-used order; past ``max_clusters`` the oldest is removed
from its tree, and a key whose last cluster goes loses its tree. A leaf
holds at most :data:`MAX_LEAF_CLUSTERS` (its least seen cluster makes room),
so that a flood of lines that are all new costs a bounded time each.

Each cluster's ``template_id`` is a hash of its first template (the first
line that started it, masked) and stays with the cluster while its template
grows more general, so a stream of one message keeps one id. A template
that started from the same line has the same id for every key, in every
run and on every instance; a cluster merged into another takes the
survivor's id from then on.

>>> miner = Drain()
>>> for line in ["user alice logged in from 10.0.0.1", "user bob logged in from 10.0.0.2",
...              "connection reset by peer", "user carol logged in from 10.0.0.3"]:
...     miner.learn_one(line, key=("auth",))
>>> miner.predict_one("user dave logged in from 10.9.9.9", key=("auth",))
'user <*> logged in from <*>'
>>> miner.predict_one("connection refused by peer", key=("auth",)) is None
True
>>> len(miner)
2
"""

from __future__ import annotations

import collections
import hashlib
import itertools
from collections.abc import Iterator

from otelml.processors.drain.masking import WILDCARD, structured_text
from otelml.processors.drain.masking import tokens as masked_tokens

# How much of a line is templated: enough for any log message, and a bound on
# what a hostile body can make a cluster hold.
MAX_TEXT = 2048
# Lines remembered with their cluster, over all keys; all are forgotten at once past this.
CACHE_SIZE = 16384
# Otherwise identical templates with this many different words at one place make that place a variable.
VARIABLE_VALUES = 3
# Clusters of one leaf at most (real logs need a handful): bounds the work a line of junk can cause.
MAX_LEAF_CLUSTERS = 64
# Clusters of other routes that a template is compared with when its first word may name a source, at most.
MAX_RELATED = 4 * MAX_LEAF_CLUSTERS
# Source words a template remembers, at most.
MAX_SOURCES = 64
# Bare variables of a line or template tried as the value only some lines of a message carry, at most.
MAX_OPTIONAL_TRIES = 4


def _is_bare(word: str) -> bool:
    """Whether ``word`` is a masked value in punctuation (``*<*>``, ``(<*>)``, ``#<*>``), with no word of its own.

    A plain ``<*>`` is not: it may stand for words that a template's lines differed in.
    """
    return word != WILDCARD and WILDCARD in word and not any(c.isalnum() for c in word.replace(WILDCARD, ""))


def _bare_positions(words: list[str]) -> list[int]:
    """Where ``words`` hold a bare variable, after the first word: the first :data:`MAX_OPTIONAL_TRIES` of them."""
    return [position for position in range(1, len(words)) if _is_bare(words[position])][:MAX_OPTIONAL_TRIES]


def _is_tag(word: str) -> bool:
    """Whether ``word`` is written as a source's name is before its message: ``sshd:``, ``logrotate.service:``."""
    return len(word) > 1 and word.endswith(":")


def _without(words: list[str], positions: tuple[int, ...]) -> list[str]:
    return [word for position, word in enumerate(words) if position not in positions]


def template_id_of(template: str) -> str:
    """The id of a template: 16 hex digits of its BLAKE2b hash.

    >>> template_id_of("user <*> logged in from <*>")
    '9d8e1a5fc0d4085f'
    """
    return hashlib.blake2b(template.encode(), digest_size=8).hexdigest()


class Cluster:
    """One template: its words, the lines that joined it, and where it sits in its key's tree.

    ``attributes`` is left to the user of the miner (the processor keeps the
    encoded OTLP attributes there); it is reset to None whenever the
    template changes. A cluster merged into another is no longer ``alive``
    and names it in ``absorbed_by``.
    """

    __slots__ = (
        "tokens",
        "size",
        "template",
        "bare",
        "template_id",
        "attributes",
        "tree",
        "path",
        "alive",
        "absorbed_by",
        "sources",
    )

    def __init__(
        self,
        tokens: list[str],
        size: int,
        tree: _Tree,
        path: tuple,
        template_id: str | None = None,
        sources: frozenset[str] = frozenset(),
    ):
        self.tokens = tokens
        self.size = size
        # The first words merged into its leading <*> when they were found to name sources.
        self.sources = sources
        self.tree = tree
        self.path = path
        self.alive = True
        self.absorbed_by: Cluster | None = None
        self._describe()
        self.template_id = template_id or template_id_of(self.template)

    def _describe(self) -> None:
        self.template = " ".join(self.tokens)
        # Where the template holds a bare variable: kept, as every line that reaches the leaf tries them.
        self.bare = tuple(_bare_positions(self.tokens))
        self.attributes: bytes | None = None

    def merge(self, tokens: list[str]) -> bool:
        """Add a line: ``<*>`` wherever the template and the line differ; whether the template changed."""
        template = self.tokens
        changed = False
        for position, (mine, theirs) in enumerate(zip(template, tokens)):
            if mine != theirs and mine != WILDCARD:
                template[position] = WILDCARD
                changed = True
        if changed:
            self._describe()
        return changed

    def leave_out(self, positions: tuple[int, ...]) -> None:
        """Drop the template's words at ``positions``: values that only some lines of the message carry."""
        self.tokens[:] = _without(self.tokens, positions)
        self._describe()

    def current(self) -> Cluster:
        """The live cluster this one's lines belong to: itself, or the one that absorbed it (maybe in turn absorbed)."""
        cluster = self
        while cluster.absorbed_by is not None:
            cluster = cluster.absorbed_by
        return cluster

    def accepts_line(self, words: list[str]) -> bool:
        """:meth:`accepts`, and at least half of the line's unmasked words (bare variables are masked) are the template's own."""
        return _takes_line(self.tokens, words)

    def accepts(self, tokens: list[str]) -> bool:
        """Whether the template takes ``tokens`` as they are: each word the same, or at a ``<*>`` of the template."""
        return _takes(self.tokens, tokens)


def _takes(template: list[str], tokens: list[str]) -> bool:
    return all(mine in (theirs, WILDCARD) for mine, theirs in zip(template, tokens))


def _takes_line(template: list[str], words: list[str]) -> bool:
    if not _takes(template, words):
        return False
    # The line's words of its own: neither <*> nor a bare variable, which is a value too.
    counted = [word != WILDCARD and not _is_bare(word) for word in words]
    own = sum(count and mine == theirs for count, mine, theirs in zip(counted, template, words))
    return 2 * own >= sum(counted)


def _same_message(one: Cluster, other: Cluster) -> bool:
    """Whether two templates of one word count agree after their first word (a ``<*>`` agrees with anything)."""
    return len(one.tokens) == len(other.tokens) and all(
        WILDCARD in (mine, theirs) or mine == theirs for mine, theirs in zip(one.tokens[1:], other.tokens[1:])
    )


class _Tree:
    """One key's parse tree: word count -> first words -> leaf (a list of clusters under the key None)."""

    __slots__ = ("key", "root", "cache", "clusters")

    def __init__(self, key: tuple):
        self.key = key
        self.root: dict = {}
        self.cache: dict[str, Cluster] = {}
        self.clusters = 0


class Drain:
    """Online log template miner (the Drain algorithm), one parse tree per key.

    Parameters
    ----------
    tree_depth
        Depth of the parse tree (``depth`` in the Drain paper): a line is
        routed by its word count and its first ``tree_depth - 3`` words. At least 3.
    merge_threshold
        The share of a line's unmasked words a cluster's template must accept
        for the line to join it (``st`` in the Drain paper), in [0, 1].
    max_node_children
        Children of one tree node at most; further words share its ``<*>`` child.
    max_clusters
        Clusters kept over all keys; the least recently used go first. 0: no limit.
    extra_delimiters
        Split words at these strings as well as at white space.
    seed_templates, seed_logs
        Templates and example lines every new key's tree starts with.
    """

    def __init__(
        self,
        tree_depth: int = 4,
        merge_threshold: float = 0.88,
        max_node_children: int = 100,
        max_clusters: int = 10000,
        extra_delimiters: tuple[str, ...] = (),
        seed_templates: tuple[str, ...] = (),
        seed_logs: tuple[str, ...] = (),
    ):
        if tree_depth < 3:
            raise ValueError("tree_depth must be at least 3")
        self.tree_depth = tree_depth
        self.merge_threshold = merge_threshold
        self.max_node_children = max_node_children
        self.max_clusters = max_clusters
        self.extra_delimiters = tuple(extra_delimiters)
        self.seed_templates = tuple(seed_templates)
        self.seed_logs = tuple(seed_logs)
        self.evicted = 0
        self._prefix = tree_depth - 3
        self._trees: dict[tuple, _Tree] = {}
        self._recent: collections.OrderedDict[Cluster, None] = collections.OrderedDict()
        self._cached = 0

    def __len__(self) -> int:
        """Live clusters over all keys."""
        return len(self._recent)

    def clusters(self) -> Iterator[Cluster]:
        """Live clusters, least recently used first."""
        return iter(self._recent)

    # River-style interface ---------------------------------------------------

    def learn_one(self, x: str, key: tuple = ()) -> None:
        """Learn the line ``x`` in ``key``'s tree."""
        self.add(x, key)

    def predict_one(self, x: str, key: tuple = ()) -> str | None:
        """The template ``x`` would join in ``key``'s tree, learning nothing; None when it would start a new one."""
        tree = self._trees.get(key)
        if tree is None:
            return None
        cluster, _, _ = self._find(tree, self._words(x))
        return cluster.template if cluster is not None else None

    # The hot path --------------------------------------------------------------

    def tree(self, key: tuple) -> _Tree:
        """``key``'s tree, created (and seeded) on first use."""
        tree = self._trees.get(key)
        if tree is None:
            tree = self._trees[key] = _Tree(key)
            for seed in self.seed_templates + self.seed_logs:
                words = self._words(seed)
                if words:
                    self._learn(tree, words, 0)
        return tree

    def add(self, x: str, key: tuple = ()) -> Cluster | None:
        """Learn the line ``x`` in ``key``'s tree and return its cluster (None for a line without words)."""
        return self.add_to(self.tree(key), x)

    def add_to(self, tree: _Tree, x: str) -> Cluster | None:
        """:meth:`add` for a tree already looked up, so that a batch looks each key up once."""
        cluster = tree.cache.get(x)
        if cluster is not None and cluster.alive:
            cluster.size += 1
            self._recent.move_to_end(cluster)
            return cluster
        words = self._words(x)
        if not words:
            return None
        cluster = self._learn(tree, words, 1)
        if len(x) <= MAX_TEXT:
            if self._cached >= CACHE_SIZE:
                for each in self._trees.values():
                    each.cache.clear()
                self._cached = 0
            tree.cache[x] = cluster
            self._cached += 1
        return cluster

    def _words(self, x: str) -> list[str]:
        """The masked words of the line ``x`` (of its message, when it is a structured record), up to :data:`MAX_TEXT`."""
        return masked_tokens(structured_text(x)[:MAX_TEXT], self.extra_delimiters)

    # The algorithm -------------------------------------------------------------

    def _route_length(self, words: list[str]) -> int:
        """How many first words route a line (never its last word)."""
        return min(self._prefix, len(words) - 1)

    def _learn(self, tree: _Tree, words: list[str], size: int) -> Cluster:
        cluster, words, left_out = self._find(tree, words)
        if cluster is not None:
            if left_out:
                self._shorten(cluster, left_out)
            if (
                cluster.sources
                and words[0] not in cluster.sources
                and words[0] != WILDCARD
                and len(cluster.sources) < MAX_SOURCES
            ):
                cluster.sources |= {words[0]}  # one more source of a message known to come from several
            cluster.size += size
            self._recent.move_to_end(cluster)
            # A template that grew more general, or moved to another word count, meets other clusters.
            if not cluster.merge(words) and not left_out:
                return cluster
            if WILDCARD in cluster.path[1:]:
                self._sweep(cluster)
            return self._settle(cluster)
        leaf, path = self._leaf(tree, words)
        self._make_room(leaf)
        cluster = Cluster(list(words), size, tree, path)
        leaf.append(cluster)
        tree.clusters += 1
        self._recent[cluster] = None
        cluster = self._settle(cluster)
        if self.max_clusters and len(self._recent) > self.max_clusters:
            self._evict()
        return cluster

    def _match(self, tree: _Tree, words: list[str]) -> Cluster | None:
        """The cluster a line joins: the most similar of its own leaf, else one at a ``<*>`` route that accepts it."""
        route = words[: self._route_length(words)]
        node = tree.root.get(len(words))
        for word in route:
            if node is None:
                break
            child = node.get(word)
            # A full node sends new words to its <*> child.
            node = node.get(WILDCARD) if child is None and len(node) >= self.max_node_children else child
        own = node.get(None, []) if node is not None else []
        best = self._best(own, words)
        if best is not None or not route:
            return best
        # Routes with <*> for some of the line's first words: where templates of sources live.
        nodes = [tree.root.get(len(words))]
        for word in route:
            nodes = [each.get(step) for each in nodes if each for step in dict.fromkeys((word, WILDCARD))]
        for each in nodes:
            leaf = each.get(None) if each else None
            if leaf is not None and leaf is not own:
                for cluster in leaf:
                    if cluster.accepts_line(words):
                        return cluster
        return None

    def _find(self, tree: _Tree, words: list[str]) -> tuple[Cluster | None, list[str], tuple[int, ...]]:
        """The cluster a line joins, the line's words for it, and the template's words to leave out for it.

        Some lines of a message carry a value that others do not (``chrome.exe *64 - ...`` and
        ``chrome.exe - ...``; ``Killed process 12 (3)`` and ``Killed process 12``). So a line that no
        template takes as it is joins one that takes it with one of its bare variables left out (a masked
        value in punctuation, see :func:`_is_bare`; never the first word, which routes), or one whose
        template has a bare variable more than the line: that template then loses it. Failing that, the
        line and the templates are compared without any of their bare variables (``close, <*> (<*>) sent,
        <*> received`` and ``close, <*> sent, <*> (<*>) received``), word for word.
        """
        cluster = self._match(tree, words)
        if cluster is not None:
            return cluster, words, ()
        for position in _bare_positions(words):
            shorter = _without(words, (position,))
            cluster = self._match(tree, shorter)
            if cluster is not None:
                return cluster, shorter, ()
        for nearby in self._nearby(tree, len(words) + 1, words[0]):
            for cluster in nearby:
                for position in cluster.bare:
                    # As :meth:`_match` takes lines: by similarity on the line's own route, else word for word.
                    if (
                        self._best([cluster], words, skip=position) is cluster
                        if cluster.tokens[0] == words[0]
                        else _takes_line(_without(cluster.tokens, (position,)), words)
                    ):
                        return cluster, words, (position,)
        core = _without(words, tuple(_bare_positions(words)))
        # The tries above left out one bare variable at most, the line's or a template's.
        for extra in range(max(0, 2 - (len(words) - len(core))), MAX_OPTIONAL_TRIES + 1):
            for nearby in self._nearby(tree, len(core) + extra, words[0]):
                for cluster in nearby:
                    if len(cluster.bare) == extra and _takes_line(_without(cluster.tokens, cluster.bare), core):
                        return cluster, core, cluster.bare
        return None, words, ()

    def _nearby(self, tree: _Tree, length: int, first: str) -> Iterator[list[Cluster]]:
        """Clusters of ``length`` words that a line starting with ``first`` may reach: on its route, then at ``<*>``.

        At most :data:`MAX_LEAF_CLUSTERS` of each; a single word routes nothing, so all one-word clusters share a leaf.
        """
        by_length = tree.root.get(length)
        if by_length is None:
            return
        if length == 1:
            yield by_length.get(None, [])[:MAX_LEAF_CLUSTERS]
            return
        for step in dict.fromkeys((first, WILDCARD)):
            if step in by_length:
                yield self._clusters_under(by_length[step])[:MAX_LEAF_CLUSTERS]

    def _shorten(self, cluster: Cluster, positions: tuple[int, ...]) -> None:
        """Leave out the words at ``positions`` from ``cluster``'s template, and move it where lines of its new length go."""
        self._detach(cluster)
        cluster.leave_out(positions)
        leaf, cluster.path = self._leaf(cluster.tree, cluster.tokens)
        self._make_room(leaf)
        leaf.append(cluster)

    def _make_room(self, leaf: list[Cluster]) -> None:
        """Before a cluster joins a full leaf, the leaf's least seen cluster (the oldest of them) goes."""
        if len(leaf) >= MAX_LEAF_CLUSTERS:
            self._remove(min(leaf, key=lambda each: each.size))
            self.evicted += 1

    def _settle(self, cluster: Cluster) -> Cluster:
        """After ``cluster`` is new or grew more general: it takes in the clusters it accepts, and variants of it merge.

        The survivor of a merge is more general again, so the same follows for it, until nothing changes.
        """
        while True:
            leaf = self._node(cluster.tree, cluster.path)[None]
            for other in [other for other in leaf if other is not cluster and cluster.accepts(other.tokens)]:
                self._absorb(cluster, other)
            variants, sources = self._variants(leaf, cluster), frozenset[str]()
            if not variants:
                families = self._sources(cluster)
                if not families:
                    return cluster
                variants, evidence = families
                sources = frozenset(each.tokens[0] for each in variants)
                if evidence:
                    self._merge(evidence, frozenset(each.tokens[0] for each in evidence))
                    if not all(each.alive for each in variants):
                        # The other message's template took some of them in: go on from where the cluster went.
                        cluster = cluster.current()
                        continue
            cluster = self._merge(variants, sources)

    def _merge(self, variants: list[Cluster], sources: frozenset[str]) -> Cluster:
        """Merge ``variants`` into the most seen of them, routed by its template from then on; it remembers ``sources``."""
        survivor = max(variants, key=lambda each: each.size)
        for other in variants:
            sources |= other.sources
            if other is not survivor:
                survivor.merge(other.tokens)
                self._absorb(survivor, other)
        survivor.sources = frozenset(sorted(sources)[:MAX_SOURCES]) if len(sources) > MAX_SOURCES else sources
        if self._route_by_template(survivor) or WILDCARD in survivor.path[1:]:
            self._sweep(survivor)
        self._recent.move_to_end(survivor)
        return survivor

    def _sweep(self, cluster: Cluster) -> None:
        """``cluster`` lives at a ``<*>`` route, so its template covers other routes: it takes in what it accepts there.

        Longer clusters count too, when it accepts them with as many of their bare variables left out.
        """
        by_length = cluster.tree.root
        for other in self._clusters_under(by_length[cluster.path[0]]):
            if other is not cluster and cluster.accepts_line(other.tokens):
                self._absorb(cluster, other)
        for extra in range(1, MAX_OPTIONAL_TRIES + 1):
            longer = by_length.get(cluster.path[0] + extra)
            for other in self._clusters_under(longer) if longer else ():
                if any(
                    cluster.accepts_line(_without(other.tokens, left_out))
                    for left_out in itertools.combinations(other.bare, extra)
                ):
                    self._absorb(cluster, other)

    def _sources(self, cluster: Cluster) -> tuple[list[Cluster], list[Cluster]] | None:
        """Whether ``cluster``'s first word names a source: its variants by first word, and another message's.

        Three first words before one message may be three messages (``boot``, ``wait``, ``halt (command
        <*>)``); the same three or more before two different messages are where the lines come from
        (``cupsd``, ``crond``, ``sshd startup succeeded`` and ``... shutdown succeeded``). The other
        message may be a template merged so before, which remembers its sources: then it is not returned.
        Nor is it looked for when every first word is written as a source's name, with a colon after it
        (``logrotate.service: Succeeded.``, :func:`_is_tag`): one message is then enough.
        """
        if len(cluster.path) < 2 or cluster.path[1] == WILDCARD:
            return None
        by_length = cluster.tree.root
        others = [
            other
            for other in self._clusters_under(by_length[cluster.path[0]])
            if other.path[1] not in (WILDCARD, cluster.path[1])
        ]
        variants = self._variants(others, cluster)
        if not variants:
            return None
        sources = {each.tokens[0] for each in variants}
        known = (
            other
            for node in by_length.values()
            if WILDCARD in node
            for other in self._clusters_under(node[WILDCARD])
            if len(other.sources & sources) >= VARIABLE_VALUES
        )
        if next(known, None) is not None or all(map(_is_tag, sources)):
            return variants, []
        candidates = (
            other
            for node in by_length.values()
            for word in sources
            if word in node
            for other in self._clusters_under(node[word])
            if other not in variants and not _same_message(other, cluster)
        )
        pool = list(itertools.islice(candidates, MAX_LEAF_CLUSTERS))  # each is compared with each: kept small
        for other in pool:
            evidence = self._variants(pool, other)
            if evidence and len({each.tokens[0] for each in evidence} & sources) >= VARIABLE_VALUES:
                return variants, evidence
        return None

    @staticmethod
    def _clusters_under(node: dict) -> list[Cluster]:
        """The clusters of ``node``'s leaves, at most about :data:`MAX_RELATED` (a bound on the work of junk)."""
        found: list[Cluster] = []
        nodes = [node]
        while nodes and len(found) < MAX_RELATED:
            for step, child in nodes.pop().items():
                if step is None:
                    found.extend(child)
                else:
                    nodes.append(child)
        return found

    def _route_by_template(self, cluster: Cluster) -> bool:
        """Move ``cluster`` to the ``<*>`` child wherever its template has ``<*>`` at a word that routes it; whether it moved."""
        path = tuple(
            WILDCARD if position and cluster.tokens[position - 1] == WILDCARD else step
            for position, step in enumerate(cluster.path)
        )
        if path == cluster.path:
            return False
        self._detach(cluster)
        node = cluster.tree.root
        for step in path:
            node = node.setdefault(step, {})
        node.setdefault(None, []).append(cluster)
        cluster.path = path
        return True

    @staticmethod
    def _variants(leaf: list[Cluster], new: Cluster) -> list[Cluster]:
        """``new`` and the clusters of ``leaf`` that differ from it in one same word, once that has enough values; else none."""
        differing: dict[int, list[Cluster]] = {}
        for cluster in leaf:
            if cluster is new:
                continue
            place, shared = None, False
            for position, (mine, theirs) in enumerate(zip(cluster.tokens, new.tokens)):
                if mine == WILDCARD or theirs == WILDCARD:
                    continue
                if mine == theirs:
                    shared = True
                elif place is None:
                    place = position
                else:
                    break
            else:
                # Lines with no word in common are not variants of one message ("active", "blocked", ...).
                if place is not None and shared:
                    differing.setdefault(place, []).append(cluster)
        # Values, not clusters, are counted: two clusters of one message (``opened ... bob`` and ``opened ... <*>``)
        # beside ``closed ...`` are two values, of two messages.
        group = next(
            (
                group
                for place, group in differing.items()
                if len({cluster.tokens[place] for cluster in group} | {new.tokens[place]}) >= VARIABLE_VALUES
            ),
            None,
        )
        return [*group, new] if group else []

    def _absorb(self, survivor: Cluster, other: Cluster) -> None:
        """``other``'s lines are ``survivor``'s from now on."""
        survivor.size += other.size
        self._remove(other)
        other.absorbed_by = survivor

    def _leaf(self, tree: _Tree, words: list[str]) -> tuple[list[Cluster], tuple]:
        """The leaf for ``words`` and the path to it, creating nodes on the way."""
        node = tree.root.get(len(words))
        if node is None:
            node = tree.root[len(words)] = {}
        path: list[int | str] = [len(words)]
        for word in words[: self._route_length(words)]:
            child = node.get(word)
            if child is None:
                wildcard = node.get(WILDCARD)
                # One place stays free for the wildcard child.
                if len(node) < self.max_node_children - (wildcard is None):
                    child = node[word] = {}
                else:
                    word = WILDCARD
                    child = wildcard if wildcard is not None else node.setdefault(WILDCARD, {})
            path.append(word)
            node = child
        leaf = node.get(None)
        if leaf is None:
            leaf = node[None] = []
        return leaf, tuple(path)

    def _best(self, leaf, words: list[str], skip: int | None = None) -> Cluster | None:
        """The most similar cluster of ``leaf`` that reaches the threshold (ties: the more general).

        With ``skip``, the templates' word there is left out (the line is one word shorter).
        """
        unmasked = len(words) - words.count(WILDCARD)
        # Similarity reaches the threshold while at most this many unmasked words differ.
        allowed = int(unmasked * (1.0 - self.merge_threshold) + 1e-9)
        best, best_rank = None, None
        for cluster in leaf:
            misses = wildcards = 0
            template = cluster.tokens if skip is None else cluster.tokens[:skip] + cluster.tokens[skip + 1 :]
            for mine, theirs in zip(template, words):
                if mine == WILDCARD:
                    wildcards += 1
                elif mine != theirs and theirs != WILDCARD:
                    misses += 1
                    if misses > allowed:
                        break
            else:
                rank = (-misses, wildcards)
                if best_rank is None or rank > best_rank:
                    best, best_rank = cluster, rank
        return best

    def _evict(self) -> None:
        self._remove(next(iter(self._recent)))
        self.evicted += 1

    def _remove(self, cluster: Cluster) -> None:
        """Take ``cluster`` out of its tree and out of the LRU order."""
        del self._recent[cluster]
        cluster.alive = False
        self._detach(cluster)
        tree = cluster.tree
        tree.clusters -= 1
        if not tree.clusters:
            del self._trees[tree.key]

    @staticmethod
    def _node(tree: _Tree, path: tuple) -> dict:
        node = tree.root
        for step in path:
            node = node[step]
        return node

    @staticmethod
    def _detach(cluster: Cluster) -> None:
        """Take ``cluster`` out of its leaf, pruning the nodes it leaves empty."""
        nodes = [cluster.tree.root]
        for step in cluster.path:
            nodes.append(nodes[-1][step])
        leaf = nodes[-1][None]
        leaf.remove(cluster)
        if not leaf:
            del nodes[-1][None]
            # Prune the nodes left without children, deepest first.
            for parent, step, child in zip(reversed(nodes[:-1]), reversed(cluster.path), reversed(nodes[1:])):
                if child:
                    break
                del parent[step]

    # State -------------------------------------------------------------------------

    def snapshot(self) -> list:
        """Every live cluster, least recently used first, as ``[key, path, words, size, id, sources]`` (JSON-ready)."""
        return [[list(c.tree.key), list(c.path), c.tokens, c.size, c.template_id, sorted(c.sources)] for c in self._recent]

    def restore(self, snapshot: list) -> None:
        """Replace every tree with those of a :meth:`snapshot` (trees restored are not seeded again)."""
        self._trees.clear()
        self._recent.clear()
        self._cached = 0
        for key, path, words, size, identity, *sources in snapshot:  # checkpoints before sources have five fields
            key = tuple(key)
            tree = self._trees.get(key)
            if tree is None:
                tree = self._trees[key] = _Tree(key)
            node = tree.root
            for step in path:
                node = node.setdefault(step, {})
            cluster = Cluster(list(words), size, tree, tuple(path), identity, frozenset(*sources))
            node.setdefault(None, []).append(cluster)
            tree.clusters += 1
            self._recent[cluster] = None
        while self.max_clusters and len(self._recent) > self.max_clusters:
            self._evict()
