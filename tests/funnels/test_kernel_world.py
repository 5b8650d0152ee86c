"""The sorted-array funnel kernel on the small synthetic world (5,000 users, ~160k events):
equal to the Ibis path (every per-unit column, exactly, and the funnel table) for the
modes and options, and to the brute-force reference on a sample of users."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.funnels import Exclusion, FunnelSpec, Step, funnel_table, kernel, user_funnel
from crm_helpers.funnels.reference import reference_user_funnel
from crm_helpers.store import from_frame

PROPS = ("category", "platform")


@pytest.fixture(scope="module")
def world(small_world):
    data = load(small_world)
    df = data.events.to_pandas()
    return data, df, from_frame(df, PROPS)


def _specs(df: pd.DataFrame) -> dict[str, FunnelSpec]:
    cats = sorted(df["category"].dropna().unique())[:2]
    t0, t1 = df["ts"].min(), df["ts"].max()
    mid = t0 + (t1 - t0) / 3
    return {
        "ordered": FunnelSpec(["visit", "product_view", "add_to_cart", "purchase"]),
        "ordered_gaps_range": FunnelSpec(
            [
                "visit",
                Step("product_view", where={"category": cats}, max_seconds_from_previous=3600),
                Step("add_to_cart", min_seconds_from_previous=30),
                "purchase",
            ],
            conversion_window_days=2,
            start=mid,
            end=mid + pd.Timedelta(days=30),
        ),
        "exclusions": FunnelSpec(
            ["product_view", "add_to_cart", "checkout", "purchase"],
            exclusions=[
                Exclusion("search", from_step=1, to_step=2),
                Exclusion("review", from_step=2),
            ],
        ),
        "attempts": FunnelSpec(
            ["visit", "product_view", Step("add_to_cart", where={"platform": "web"})],
            count="attempts",
            conversion_window_days=1,
        ),
        "strict": FunnelSpec(["visit", "listing_view", "product_view"], mode="strict"),
        "strict_attempts_excl": FunnelSpec(
            ["app_open", "product_view", "product_view"],
            mode="strict",
            count="attempts",
            exclusions=[Exclusion("search")],
        ),
        "any_order": FunnelSpec(
            ["product_view", "wishlist_add", "add_to_cart"],
            mode="any_order",
            conversion_window_days=3,
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "ordered",
        "ordered_gaps_range",
        "exclusions",
        "attempts",
        "strict",
        "strict_attempts_excl",
        "any_order",
    ],
)
def test_kernel_equals_ibis_on_world(world, name, fx):
    data, df, arrays = world
    spec = _specs(df)[name]
    got = kernel.user_funnel_frame(arrays, spec)
    assert (got["steps_reached"] >= 2).sum() > 0  # the world exercises the funnel
    engine = user_funnel(data.events, spec).to_pandas()
    fx.assert_same_users(got, engine)
    assert got.dtypes.to_dict() == engine.dtypes.to_dict()
    pd.testing.assert_frame_equal(
        funnel_table(data, spec, arrays=arrays),
        funnel_table(data, spec),
        check_exact=False,
        rtol=1e-12,
        atol=0,
    )
    # brute force on a sample of users (it enumerates chains: small inputs only)
    sample = df[df["user_id"] % 40 == 0]
    sub = kernel.user_funnel_frame(from_frame(sample, PROPS), spec)
    fx.assert_same_users(sub, reference_user_funnel(sample, spec))
