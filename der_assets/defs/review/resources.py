"""The review settings resource, from the environment (DER_REVIEW_MAX_AGE_H)."""

import dagster as dg

from der_assets.defs.review.assets import ReviewSettings


@dg.definitions
def review_resources() -> dg.Definitions:
    return dg.Definitions(resources={"review": ReviewSettings()})
