"""Search ranks only a project's newest ``RANKED_CAP`` matches (what keeps a very common word
fast at 100,000 tickets): the window is per project, and ranking inside it is unchanged.

The cap is lowered to 3 here so a handful of real tickets exercises the same SQL a large project
runs; the numbers behind it are in bench/RESULTS.md (bench/tickets_search.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codeyard.tickets import store as ticket_store
from tests.conftest import Api
from tests.integration.test_tickets import make_project, ticket

pytestmark = pytest.mark.anyio


async def numbers(api: Api, slug: str, q: str) -> list[int]:
    found = await api.get(f"/api/projects/{slug}/tickets/search", params={"q": q})
    assert found.status_code == 200, found.text
    return [h["number"] for h in found.json()["data"]]


async def test_only_the_newest_matches_are_ranked_per_project(
    api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_project(api, git_repo)
    await make_project(api, git_repo, slug="other")
    await ticket(api, "shop", title="Invoice export", body="csv")  # 1: title match, oldest
    for title in ("Cart", "Coupons", "Refunds", "Taxes"):  # 2-5: body matches
        await ticket(api, "shop", title=title, body=f"touches the invoice {title.lower()}")
    for n in range(4):  # newer matches in another project must not use up shop's window
        await ticket(api, "other", title=f"Invoice {n}", body="invoice")
    await ticket(api, "shop", title="Unrelated", body="nothing")  # 6: no match
    assert (await numbers(api, "shop", "invoice"))[0] == 1  # uncapped: the title match wins
    monkeypatch.setattr(ticket_store, "RANKED_CAP", 3)
    capped = await numbers(api, "shop", "invoice")
    assert sorted(capped) == [3, 4, 5]  # shop's three newest matches, not other's
    await ticket(api, "shop", title="Invoice totals", body="rounding")  # 7: newest, in title
    capped = await numbers(api, "shop", "invoice")
    assert capped[0] == 7 and sorted(capped) == [4, 5, 7]  # title first inside the window
    assert await numbers(api, "shop", "nothing") == [6]  # fewer matches than the cap
