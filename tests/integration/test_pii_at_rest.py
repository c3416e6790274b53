"""No clear personal datum at rest: every Parquet file in the DVC cache and the DVC remote,
after the tiny pipeline's ``dvc repro`` and a ``dvc push``, holds no email-like value."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z]{2,}")
# Outside Parquet (reports, Data Docs' HTML and scripts), the simulator's own addresses.
SIMULATED_EMAIL = re.compile(rb"customer\d{6}@example\.com")


def email_like(path) -> list[str]:
    """Email-like values in a Parquet file's text columns; simulated addresses elsewhere."""
    data = path.read_bytes()
    if not data.startswith(b"PAR1"):
        return [m.decode() for m in SIMULATED_EMAIL.findall(data)]
    table = pq.read_table(path)
    found = []
    for column in table.column_names:
        values = table.column(column)
        if values.type in ("string", "large_string"):
            found += [v for v in values.to_pylist() if v and EMAIL.search(v)]
    return found


def test_dvc_cache_and_remote_hold_no_email(pipeline_repo):
    repo, _ = pipeline_repo
    repo.dvc("push", check=True)
    stores = [repo.root / ".dvc" / "cache", repo.root / ".dvc-remote"]
    files = [p for store in stores for p in store.rglob("*") if p.is_file()]
    parquet = [p for p in files if p.read_bytes()[:4] == b"PAR1"]
    assert len(parquet) >= 2 * 5  # snapshot, clean, quarantine and the splits, in both stores
    assert any(p.is_relative_to(stores[1]) for p in parquet)
    leaks = {str(p): found[:3] for p in files if (found := email_like(p))}
    assert leaks == {}
