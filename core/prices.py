"""Model prices from genai-prices, with unknown models remembered as unknown.

pydantic-ai prices every model response (and Parley once more when it records the turn). genai-prices
caches the models it finds, but a model it does not know (a local server's, a new release, a test
model) is searched for again on every call, across every model of the provider and its fallbacks: a
few hundred pattern matches per response, on the event loop. The snapshot installed here remembers
those misses too, so a turn pays for a lookup once per model name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genai_prices import data_snapshot, types

MAX_REMEMBERED_MISSES = 1024
"""Model names come from configuration and from the provider's responses; a provider answering with
ever new names must not grow the set without end: past this many, it starts again."""

MissKey = tuple[str | None, str | None, str | None, str]


@dataclass
class MissRememberingSnapshot(data_snapshot.DataSnapshot):
    """genai-prices' bundled snapshot, failing at once for a (provider, model) it failed to find before."""

    _misses: set[MissKey] = field(default_factory=set, init=False)

    def find_provider_model(
        self,
        model_ref: str,
        provider: types.Provider | None,
        provider_id: str | None,
        provider_api_url: str | None,
    ) -> tuple[types.Provider, types.ModelInfo]:
        key = (provider.id if provider else None, provider_id, provider_api_url, model_ref.lower())
        if key in self._misses:
            raise LookupError(f"no price known for model {model_ref!r}")
        try:
            return super().find_provider_model(model_ref, provider, provider_id, provider_api_url)
        except LookupError:
            if len(self._misses) >= MAX_REMEMBERED_MISSES:
                self._misses.clear()
            self._misses.add(key)
            raise


def remember_unknown_models() -> None:
    """Install the remembering snapshot for this process, over the prices in use (once; later calls do nothing)."""
    current = data_snapshot.get_snapshot()
    if isinstance(current, MissRememberingSnapshot):
        return
    data_snapshot.set_custom_snapshot(
        MissRememberingSnapshot(
            providers=current.providers, from_auto_update=current.from_auto_update, timestamp=current.timestamp
        )
    )
