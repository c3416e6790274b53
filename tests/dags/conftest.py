"""The DagBag of dags/, loaded once per test module."""

import pytest

from tests.dags.dag_files import load_dagbag


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    return load_dagbag(tmp_path_factory)
