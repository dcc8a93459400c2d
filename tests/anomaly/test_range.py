"""The range detector's young keys: bounds further out until a key's range is settled."""

import numpy as np

from otelml.processors.anomaly.kernels import Rank
from otelml.processors.anomaly.models import Range


def flag_rates(settled: int, keys: int = 2000, records: int = 3000, threshold: float = 0.65) -> tuple[float, float]:
    """Share of steady Gaussian records the range detector flags, on keys of 300-1000 records and of 2000 and more."""
    kernel = Range(settled=settled).make_kernel()
    state = {name: np.full((keys, *field.shape), field.fill, field.dtype) for name, field in kernel.fields.items()}
    rng = np.random.default_rng(3)
    young = settled_flags = 0
    learn = np.ones(keys, dtype=bool)
    for age in range(records):
        rank = Rank(keys, rng.normal(20.0, 1.0, keys), np.zeros(keys))
        flags = int((kernel.predict(state, rank) >= threshold).sum())
        young += flags if 300 <= age < 1000 else 0
        settled_flags += flags if age >= 2000 else 0
        kernel.learn(state, rank, rank.y, learn)
    return young / (700 * keys), settled_flags / (1000 * keys)


def test_a_young_key_flags_steady_values_no_more_often_than_a_settled_one():
    young, old = flag_rates(settled=2000)
    assert young <= 1.5 * old, (young, old)
    # Without the wider young bounds, a young key steps past its range several times as often.
    unsettled_young, unsettled_old = flag_rates(settled=0)
    assert unsettled_young > 2.5 * unsettled_old and unsettled_young > 2.5 * young, (unsettled_young, unsettled_old, young)
