"""Dollar prices of model tokens, from a vendored snapshot of LiteLLM's price map.

No network: the data is ``litellm_prices.json`` (see ``LITELLM_PRICES.md`` for its source).
"""

from codeyard.pricing.prices import (
    VENDORS,
    ModelPrice,
    cost_usd,
    models,
    price_for,
    price_usage,
    resolve,
)

__all__ = ["VENDORS", "ModelPrice", "cost_usd", "models", "price_for", "price_usage", "resolve"]
