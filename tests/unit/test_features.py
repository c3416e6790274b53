from dataclasses import asdict

import numpy as np
import pandas as pd

from pipelines.features import FeatureTransform
from pipelines.schema import UNKNOWN_CATEGORY


def test_transform_standardises_clips_and_one_hot_encodes(frame, schema, tmp_path):
    transform = FeatureTransform.fit(frame, schema)
    matrix = transform.transform(frame)
    assert matrix.shape == (len(frame), transform.width) and matrix.dtype == np.float32
    numeric = matrix[:, : len(transform.numeric)]
    assert np.allclose(numeric.mean(axis=0), 0, atol=1e-5)
    raw = pd.DataFrame(
        {
            "amount": [np.nan, np.inf, 1e12, -5.0],
            "age": [30, 30, 30, 30],
            "color": ["red", "mauve", None, UNKNOWN_CATEGORY],
        }
    )
    out = transform.transform(raw)
    amount = out[:, transform.numeric.index("amount")]
    top = (schema.columns["amount"].max - transform.means[0]) / transform.stds[0]
    assert amount[0] == 0.0 and amount[1] == amount[2] == np.float32(top)
    colors = out[:, len(transform.numeric) :]
    assert colors[0, transform.categorical["color"].index("red")] == 1
    assert (colors[1:, -1] == 1).all()
    path = tmp_path / "t.json"
    transform.save(path)
    assert FeatureTransform.load(path) == transform


def test_boolean_categoricals_match_between_clean_and_raw(data_params, validate_params):
    from pipelines.cleaning import clean_rows
    from pipelines.schema import infer_schema

    raw = pd.DataFrame({"flag": [True, False] * 50, "x": np.arange(100.0), "label": [0, 1] * 50})
    schema = infer_schema(raw, data_params, 10, 0.5, 10)
    clean = clean_rows(raw, schema, validate_params).clean
    transform = FeatureTransform.fit(clean, schema)
    assert np.array_equal(transform.transform(clean), transform.transform(raw))


def test_text_in_a_numeric_column_is_named(frame, schema):
    import pytest

    from pipelines.errors import PipelineError

    transform = FeatureTransform.fit(frame, schema)
    with pytest.raises(PipelineError, match="column 'amount': expected numbers, got \\['12,5'\\]"):
        transform.transform(frame.head(3).assign(amount=["1.5", "12,5", None]))


def test_embedding_encoding_emits_one_code_column_per_categorical(frame, schema, tmp_path):
    transform = FeatureTransform.fit(frame, schema, "embedding")
    vocabulary = transform.categorical["color"]
    assert vocabulary == ["blue", "green", "red"]
    assert transform.width == len(transform.numeric) + 1
    assert transform.levels == [len(vocabulary) + 1]
    matrix = transform.transform(frame)
    assert matrix.shape == (len(frame), transform.width) and matrix.dtype == np.float32
    # Numeric columns come first and match one_hot's exactly.
    one_hot = FeatureTransform.fit(frame, schema)
    n = len(transform.numeric)
    assert np.array_equal(matrix[:, :n], one_hot.transform(frame)[:, :n])
    codes = matrix[:, n]
    assert np.array_equal(codes, frame["color"].map(vocabulary.index).to_numpy("float32"))
    path = tmp_path / "t.json"
    transform.save(path)
    assert FeatureTransform.load(path) == transform


def test_unknown_and_missing_categories_take_the_last_code(frame, schema):
    transform = FeatureTransform.fit(frame, schema, "embedding")
    raw = pd.DataFrame(
        {
            "amount": [1.0] * 4,
            "age": [30] * 4,
            "color": ["red", "mauve", None, UNKNOWN_CATEGORY],
        }
    )
    codes = transform.transform(raw)[:, -1]
    unknown = len(transform.categorical["color"])
    assert codes.tolist() == [transform.categorical["color"].index("red"), *[unknown] * 3]


def test_a_transform_saved_before_encodings_existed_loads_as_one_hot(frame, schema, tmp_path):
    import json

    transform = FeatureTransform.fit(frame, schema)
    saved = asdict(transform)
    del saved["encoding"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(saved))
    loaded = FeatureTransform.load(path)
    assert loaded.encoding == "one_hot" and loaded == transform
    assert np.array_equal(loaded.transform(frame), transform.transform(frame))


def test_an_unknown_encoding_is_an_error(frame, schema):
    import pytest

    from pipelines.errors import PipelineError

    with pytest.raises(PipelineError, match="unknown categorical encoding 'ordinal'"):
        FeatureTransform.fit(frame, schema, "ordinal")
