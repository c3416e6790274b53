"""Seeded simulator of card transactions: the embedded default data.

Writes one file per day into the landing folder. Fraud (about ``fraud_rate``) depends, with a sharpness of
``signal_strength``, on
amount, hour, channel, merchant category, distance from home, account age and velocity, so
a model can learn it. A share of rows (``dirt_rate``) carries realistic defects: nulls,
exact duplicates, out-of-range amounts and categories never seen before. ``drift_per_day``
shifts amounts and the channel mix a little more each day.

    python -m pipelines.simulate [--if-empty] [--out DIR] [--first-day K] [--days N]
"""

from __future__ import annotations

import argparse
import logging
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import paths
from pipelines.config import SimulateParams, load_params
from pipelines.io import atomic_path
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

FIRST_DATE = date(2026, 1, 1)
MERCHANT_CATEGORIES = [
    "grocery",
    "fuel",
    "restaurant",
    "travel",
    "electronics",
    "online_services",
    "jewelry",
    "gaming",
    "pharmacy",
    "apparel",
]
MERCHANT_RISK = np.array([-0.6, -0.4, -0.3, 0.4, 0.9, 0.6, 1.2, 1.0, -0.5, 0.0])
CHANNELS = ["pos", "online", "atm"]
CHANNEL_RISK = np.array([-0.5, 0.8, 0.3])
COUNTRIES = ["US", "GB", "DE", "FR", "BR", "NG", "IN"]
COUNTRY_WEIGHTS = np.array([0.55, 0.12, 0.1, 0.09, 0.06, 0.03, 0.05])
UNSEEN_CATEGORIES = ["crypto_exchange", "gift_cards"]
N_CUSTOMERS_PER_ROW = 0.2


def simulate_day(day_index: int, cfg: SimulateParams, seed: int) -> pd.DataFrame:
    """One day of transactions; pure and deterministic in (day_index, cfg, seed)."""
    rng = np.random.default_rng([seed, day_index])
    n = cfg.rows_per_day
    drift = cfg.drift_per_day * day_index
    day = FIRST_DATE + timedelta(days=day_index)

    seconds = np.sort(rng.integers(0, 86_400, size=n))
    hour = seconds // 3600
    merchant = rng.integers(0, len(MERCHANT_CATEGORIES), size=n)
    channel_p = np.array([0.6 - 0.1 * min(drift, 1), 0.3 + 0.1 * min(drift, 1), 0.1])
    channel = rng.choice(len(CHANNELS), size=n, p=channel_p / channel_p.sum())
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS)
    amount = np.round(rng.lognormal(mean=3.6 + 0.3 * drift, sigma=1.0, size=n), 2)
    distance = np.round(rng.exponential(scale=15.0, size=n), 2)
    account_age = rng.integers(1, 3650, size=n)
    velocity = rng.poisson(lam=1.5, size=n)
    card_present = np.where(CHANNELS.index("online") == channel, 0, rng.random(n) < 0.95)
    n_customers = max(10, int(N_CUSTOMERS_PER_ROW * n * cfg.n_days))
    customer = rng.integers(0, n_customers, size=n)

    score = (
        0.9 * (np.log(amount) - 3.6)
        + 0.8 * ((hour < 6) | (hour >= 23))
        + CHANNEL_RISK[channel]
        + MERCHANT_RISK[merchant]
        + 0.6 * np.log1p(distance / 15.0)
        - 0.5 * np.log(account_age / 365.0)
        + 0.35 * velocity
        - 0.7 * card_present
    )
    score = cfg.signal_strength * score
    intercept = _intercept_for_rate(score, cfg.fraud_rate)
    is_fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-(score + intercept)))).astype("int64")

    frame = pd.DataFrame(
        {
            "transaction_id": [f"tx-{day_index:04d}-{i:07d}" for i in range(n)],
            "customer_id": [f"cust-{c:06d}" for c in customer],
            # Personal data, as real feeds carry it: the schema flags it, validate drops it.
            "customer_email": [f"customer{c:06d}@example.com" for c in customer],
            "timestamp": pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s"),
            "amount": amount,
            "merchant_category": np.array(MERCHANT_CATEGORIES, dtype=object)[merchant],
            "channel": np.array(CHANNELS, dtype=object)[channel],
            "country": np.array(COUNTRIES, dtype=object)[country],
            "hour": hour.astype("int64"),
            "distance_from_home_km": distance,
            "account_age_days": account_age.astype("int64"),
            "tx_count_24h": velocity.astype("int64"),
            "card_present": card_present.astype("int64"),
            "is_fraud": is_fraud,
        }
    )
    return _add_dirt(frame, rng, cfg.dirt_rate)


def _intercept_for_rate(score: np.ndarray, rate: float) -> float:
    """Bisect the logit intercept so the expected positive rate equals ``rate``."""
    low, high = -30.0, 30.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(score + mid)))) > rate:
            high = mid
        else:
            low = mid
    return (low + high) / 2


def _add_dirt(frame: pd.DataFrame, rng: np.random.Generator, dirt_rate: float) -> pd.DataFrame:
    n_each = int(len(frame) * dirt_rate / 4)
    if n_each == 0:
        return frame
    frame = frame.copy()
    frame["distance_from_home_km"] = frame["distance_from_home_km"].astype("float64")
    null_rows = rng.choice(len(frame), size=n_each, replace=False)
    frame.loc[null_rows, "distance_from_home_km"] = np.nan
    bad_amount_rows = rng.choice(len(frame), size=n_each, replace=False)
    frame.loc[bad_amount_rows, "amount"] = np.where(
        rng.random(n_each) < 0.5, -frame.loc[bad_amount_rows, "amount"], 9.9e6
    )
    unseen_rows = rng.choice(len(frame), size=max(1, n_each // 4), replace=False)
    frame.loc[unseen_rows, "merchant_category"] = rng.choice(
        UNSEEN_CATEGORIES, size=len(unseen_rows)
    )
    duplicates = frame.iloc[rng.choice(len(frame), size=n_each, replace=False)]
    return pd.concat([frame, duplicates], ignore_index=True)


def write_partitions(
    out: Path, cfg: SimulateParams, seed: int, first_day: int, days: int
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for day_index in range(first_day, first_day + days):
        frame = simulate_day(day_index, cfg, seed)
        day = FIRST_DATE + timedelta(days=day_index)
        target = out / f"transactions_{day.isoformat()}.{cfg.file_format}"
        with atomic_path(target) as tmp:
            if cfg.file_format == "csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
        log.info("wrote %s (%d rows, %d fraud)", target, len(frame), int(frame["is_fraud"].sum()))
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=paths.LANDING)
    parser.add_argument("--if-empty", action="store_true", help="do nothing if OUT has files")
    parser.add_argument("--first-day", type=int, default=0, help="index of the first day")
    parser.add_argument("--days", type=int, default=None, help="default: simulate.n_days")
    args = parser.parse_args()
    params = load_params()
    if args.if_empty and args.out.exists() and any(args.out.iterdir()):
        log.info("%s already has data; not simulating", args.out)
        return
    days = params.simulate.n_days if args.days is None else args.days
    write_partitions(args.out, params.simulate, params.seed, args.first_day, days)


if __name__ == "__main__":
    run_stage("simulate", main, record_failure=False)
