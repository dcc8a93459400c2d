"""The rate target's default models: a busy key whose records come at random is not an anomaly."""

from __future__ import annotations

import random

import pytest

from otelml.pdata import Signal
from otelml.processors.anomaly.config import DEFAULT_MODELS, AnomalyConfig
from otelml.references import parse_target
from tests.anomaly.support import START, make_processor
from tests.anomaly.test_burst import arrivals, flags_at


def test_the_default_models_follow_the_target():
    def names(settings: dict, target: str) -> list[str]:
        return [model.name for model in AnomalyConfig.model_validate(settings).target_models(parse_target(target))]

    assert names({}, "duration") == [model.name for model in DEFAULT_MODELS]
    assert names({"target": "rate"}, "rate") == ["seasonal_profile", "ewm_mean", "level_shift", "range"]
    assert names({"target": "novelty"}, "novelty") == ["rarity"]
    assert names({"target": "rate", "models": ["ewm_mean", "burst"]}, "rate") == ["ewm_mean", "burst"]


def test_an_empty_list_of_models_is_still_an_error():
    assert "models: name at least one model" in AnomalyConfig.model_validate({"target": "rate", "models": []}).validate_config()


# Seeds of ten minutes at twelve records a second in which autoregression, given the rate, flags a record.
@pytest.mark.parametrize("seed", [6, 7])
async def test_ten_busy_minutes_at_random_are_not_flagged_by_the_rates_defaults(seed):
    times = arrivals(random.Random(seed), lambda t: 12.0, START, START + 600.0)

    def processor(**models):
        return make_processor(Signal.LOGS, key=["resource.service.name"], target="rate", warmup=50, verbose=True, **models)

    defaults = await flags_at(processor(), times)
    assert not any(flagged for _, flagged in defaults)
    # Why autoregression is not among them: it judges the newest gap, which here is chance.
    with_autoregression = await flags_at(processor(models=[model.name for model in DEFAULT_MODELS]), times)
    assert any(flagged for _, flagged in with_autoregression)
