"""A table as a user brings one: IDs, dates as text and as datetimes, many categories, a column to ignore."""

from __future__ import annotations

import numpy as np
import pandas as pd

from accord.members.preprocess import HIGH_CARDINALITY


def user_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    amount = rng.normal(size=n)
    city = rng.integers(0, 2 * HIGH_CARDINALITY, n)
    y = (amount + (signup.year.to_numpy() - 2021) * 0.8 + (city % 3 == 0) > 0.3).astype(int)
    return pd.DataFrame(
        {
            "customer": [f"c-{i:05d}" for i in range(n)],  # text, unique: an ID
            "row": np.arange(n) + 1000,  # whole numbers, unique: an ID
            "amount": amount,  # a continuous number is unique per row too, and kept
            "signup": signup.strftime("%Y-%m-%d"),  # ISO dates as text (as a CSV brings them)
            "seen": pd.to_datetime(signup, utc=True) + pd.Timedelta(hours=5),  # a datetime column
            "city": [f"city-{c}" for c in city],  # many categories: target-encoded by one-hot members
            "note": rng.choice(["a", "b"], n),  # ignored by the config
            "churned": y,
        }
    )
