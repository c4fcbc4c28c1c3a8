"""Unknown models are looked up once per name, not on every response (core/prices.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from genai_prices import calc_price, data_snapshot, types
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.usage import RequestUsage

from core import prices


@pytest.fixture
def snapshot() -> Iterator[prices.MissRememberingSnapshot]:
    before = data_snapshot._custom_snapshot
    data_snapshot.set_custom_snapshot(None)
    prices.remember_unknown_models()
    installed = data_snapshot.get_snapshot()
    assert isinstance(installed, prices.MissRememberingSnapshot)
    yield installed
    data_snapshot.set_custom_snapshot(before)


def response(model: str) -> ModelResponse:
    return ModelResponse(
        parts=[TextPart("hi")],
        usage=RequestUsage(input_tokens=1000, output_tokens=100),
        model_name=model,
        provider_name="openai",
        provider_url="http://127.0.0.1:9999/v1",
    )


def counting_matches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = types.Provider._match_model

    def match(self: types.Provider, model_ref: str, **kwargs: object) -> types.ModelInfo | None:
        seen.append(model_ref)
        return original(self, model_ref, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(types.Provider, "_match_model", match)
    return seen


def test_an_unknown_model_is_searched_for_once(
    snapshot: prices.MissRememberingSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches = counting_matches(monkeypatch)
    for _ in range(5):
        with pytest.raises(LookupError):
            response("parley-unknown-model").cost()
    first = len(searches)
    with pytest.raises(LookupError):
        response("parley-unknown-model").cost()
    assert first > 0 and len(searches) == first


def test_known_models_are_still_priced(snapshot: prices.MissRememberingSnapshot) -> None:
    with pytest.raises(LookupError):
        response("parley-unknown-model").cost()
    price = calc_price(RequestUsage(input_tokens=1_000_000, output_tokens=0), "gpt-4o", provider_id="openai")
    assert price.total_price > 0
    assert response("gpt-4o").cost().total_price > 0


def test_installing_twice_keeps_the_remembered_misses(snapshot: prices.MissRememberingSnapshot) -> None:
    with pytest.raises(LookupError):
        response("parley-unknown-model").cost()
    prices.remember_unknown_models()
    assert data_snapshot.get_snapshot() is snapshot and snapshot._misses


def test_remembered_misses_stay_bounded(
    snapshot: prices.MissRememberingSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prices, "MAX_REMEMBERED_MISSES", 3)
    for n in range(10):
        with pytest.raises(LookupError):
            snapshot.find_provider_model(f"parley-unknown-{n}", None, "openai", None)
    assert 1 <= len(snapshot._misses) <= 3
