"""The model train fits: a Keras MLP over the transformed features.

Categorical features enter the MLP one-hot encoded, or (``train.categorical_encoding:
embedding``) as integer codes that the model looks up in one learned Embedding per feature,
``train.embedding_dim`` wide (``auto``: fastai's min(16, round(1.6 x levels^0.56))).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.config import TrainParams
from pipelines.errors import PipelineError
from pipelines.tf_runtime import tensorflow


def dtype_policy(setting: str, gpus: int) -> str:
    """mixed_float16 only on GPU: CPUs have no fast float16 math, so it would only lose precision."""
    return "mixed_float16" if setting == "auto" and gpus > 0 else "float32"


def embedding_dim(levels: int, setting: str | int = "auto") -> int:
    """Embedding width for a feature with ``levels`` codes (unknown slot included).

    ``auto`` is fastai's rule of thumb, min(16, round(1.6 x levels^0.56)): 2 levels -> 2,
    4 -> 3, 10 -> 6, 100 -> 21 capped at 16.
    """
    if setting == "auto":
        return min(16, round(1.6 * levels**0.56))
    return int(setting)


def build_model(
    width: int,
    cfg: TrainParams,
    policy: str = "float32",
    steps_per_execution: int = 1,
    levels: Sequence[int] = (),
):
    """The MLP over one float32 input ``features`` of ``width`` columns.

    With ``levels`` (the transform's ``embedding`` encoding), the last ``len(levels)``
    columns hold integer codes: each is cut out, looked up in its own
    ``Embedding(levels[i], dim)`` and flattened. The first Dense layer then takes the numeric
    columns and the embeddings through two kernels whose outputs are added (the same function
    as one Dense over their concatenation): a concatenation of the numeric input columns with
    the embeddings would force full-integer int8 to give them one scale, which also becomes the
    input's, set by the standardised numbers, so higher codes were clipped to a lower one.
    Only stock tf-keras layers (Reshape, Cropping1D, Rescaling, Embedding, Flatten,
    Concatenate, Add, Activation), so the saved model loads in safe mode without custom
    objects, and the TFLite converters see plain slices and gathers.
    """
    _, keras = tensorflow()
    regularizer = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    inputs = keras.Input(shape=(width,), name="features")
    parts = [inputs]
    if levels:
        parts = _embedded(keras, inputs, width, list(levels), cfg.embedding_dim, policy)

    for units in cfg.hidden_units:
        hidden = _dense(keras, parts, units, "relu", regularizer, policy, None)
        if cfg.dropout:
            hidden = keras.layers.Dropout(cfg.dropout, dtype=policy)(hidden)
        parts = [hidden]
    # float32 output under mixed precision too: float16 keeps ~3 significant digits, so
    # probabilities near 0 or 1 would round to exactly 0 or 1 and destabilise the loss.
    outputs = _dense(keras, parts, 1, "sigmoid", regularizer, "float32", "probability")
    model = keras.Model(inputs, outputs)
    _compile(keras, model, cfg, policy, steps_per_execution)
    return model


def _compile(keras, model, cfg: TrainParams, policy: str, steps_per_execution: int) -> None:
    """Adam, the configured loss, and the PR-AUC/ROC-AUC metrics that training watches."""
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    if policy == "mixed_float16":
        # Keras only adds loss scaling itself when the global policy is mixed; ours is per layer.
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    loss = (
        keras.losses.BinaryFocalCrossentropy(gamma=cfg.focal_gamma)
        if cfg.loss == "focal"
        else keras.losses.BinaryCrossentropy()
    )
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[keras.metrics.AUC(curve="PR", name="pr_auc"), keras.metrics.AUC(name="roc_auc")],
        steps_per_execution=steps_per_execution,
    )


def _dense(keras, parts: list, units: int, activation: str, regularizer, dtype: str, name):
    """A Dense layer over ``parts`` (one tensor, or [numeric, embedded]): one kernel per
    part, their outputs added, then one bias and the activation."""
    if len(parts) == 1:
        return keras.layers.Dense(
            units, activation=activation, kernel_regularizer=regularizer, dtype=dtype, name=name
        )(parts[0])
    prefix = name or "dense_in"
    kernels = [
        keras.layers.Dense(
            units,
            use_bias=part_name == "numeric",
            kernel_regularizer=regularizer,
            dtype=dtype,
            name=f"{prefix}_{part_name}",
        )(part)
        for part, part_name in zip(parts, ("numeric", "embedded"), strict=True)
    ]
    summed = keras.layers.Add(dtype=dtype, name=f"{prefix}_sum")(kernels)
    return keras.layers.Activation(activation, dtype=dtype, name=name)(summed)


def _embedded(keras, inputs, width: int, levels: list[int], dim_setting, policy: str) -> list:
    """[the numeric columns, the code columns' embeddings concatenated], or the one present."""
    numeric = width - len(levels)
    if numeric < 0:
        raise PipelineError(f"{len(levels)} code columns do not fit in {width} input columns")
    columns = keras.layers.Reshape((width, 1), name="columns")(inputs)
    parts, embedded = [], []
    if numeric:
        block = keras.layers.Cropping1D((0, len(levels)), name="numeric_columns")(columns)
        parts.append(keras.layers.Flatten(name="numeric")(block))
    for i, count in enumerate(levels):
        at = numeric + i
        code = keras.layers.Cropping1D((at, width - at - 1), name=f"code_column_{i}")(columns)
        code = keras.layers.Reshape((1,), name=f"code_{i}")(code)
        # Embedding casts its float input to int32 by truncation: +0.5 makes that rounding,
        # so a code that int8 quantization of the input moved by less than 0.5 stays itself.
        code = keras.layers.Rescaling(1.0, offset=0.5, name=f"code_{i}_rounded")(code)
        vectors = keras.layers.Embedding(
            count, embedding_dim(count, dim_setting), dtype=policy, name=f"embedding_{i}"
        )(code)
        embedded.append(keras.layers.Flatten(name=f"embedded_{i}")(vectors))
    if len(embedded) > 1:
        embedded = [keras.layers.Concatenate(name="embedded_features", dtype=policy)(embedded)]
    return parts + embedded


def float32_copy(model, width: int, cfg: TrainParams, levels: Sequence[int] = ()):
    """The same weights in an all-float32 model, outside any strategy.

    Mixed precision is a training speed-up only: TFLite cannot convert float16 MatMuls (the
    quantize stage fails on them), and evaluate and serving expect float32. Under
    mixed_float16 the variables are float32 already, so the copy is exact.
    """
    copy = build_model(width, cfg, levels=levels)
    copy.set_weights(model.get_weights())
    return copy
