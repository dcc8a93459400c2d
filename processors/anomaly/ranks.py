"""How a batch's records fall into keys, as index arrays.

Records of one key must be judged in order, records of different keys are
independent. :class:`Ranks` gives each record its *rank*, its place among
its key's records in the batch, so that the engine can judge the
first record of every key at once, then every second one, and so on.
"""

from __future__ import annotations

import numpy as np


class Ranks:
    """Ranks, groups and per-key counts of one batch.

    Parameters
    ----------
    key_ids
        Each record's key, as an index into the batch's distinct keys.
    key_count
        How many distinct keys the batch has.

    Examples
    --------
    >>> ranks = Ranks(np.array([0, 1, 0, 2, 0, 1]), 3)
    >>> ranks.ranks.tolist(), ranks.counts.tolist(), ranks.depth
    ([0, 0, 1, 0, 2, 1], [3, 2, 1], 3)
    >>> ranks.groups()
    [[0, 2, 4], [1, 5], [3]]
    >>> order, sizes, key_order = ranks.by_rank()
    >>> order.tolist(), sizes.tolist(), key_order.tolist()
    ([0, 1, 3, 2, 5, 4], [3, 2, 1], [0, 1, 2])
    """

    def __init__(self, key_ids: np.ndarray, key_count: int):
        self.key_ids = key_ids
        self.counts = np.bincount(key_ids, minlength=key_count)
        # Record indices grouped by key, each key's records in batch order.
        self.by_key = np.argsort(key_ids, kind="stable")
        starts = np.cumsum(self.counts) - self.counts
        self.ranks = np.empty(len(key_ids), dtype=np.intp)
        self.ranks[self.by_key] = np.arange(len(key_ids)) - np.repeat(starts, self.counts)
        self.depth = int(self.counts.max()) if len(key_ids) else 0
        self._by_rank: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def groups(self) -> list[list[int]]:
        """Each key's record indices, in batch order."""
        return [group.tolist() for group in np.split(self.by_key, np.cumsum(self.counts)[:-1])]

    def by_rank(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Records ordered by rank, then key; how many keys each rank has; the key order within a rank.

        Keys with the most records come first, so the keys of rank ``r`` are
        the first ``sizes[r]`` keys of ``key_order`` and its records the
        ``sizes[r]`` records after those of the lower ranks.
        """
        if self._by_rank is None:
            # Computed once: every stage of the engine walks the batch in this order.
            key_order = np.argsort(-self.counts, kind="stable")
            position = np.empty(len(key_order), dtype=np.intp)
            position[key_order] = np.arange(len(key_order))
            order = np.lexsort((position[self.key_ids], self.ranks))
            sizes = len(self.counts) - np.cumsum(np.bincount(self.counts, minlength=self.depth + 1))[: self.depth]
            self._by_rank = order, sizes, key_order
        return self._by_rank
