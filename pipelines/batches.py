"""The training input: tf.data batches over the transformed feature arrays.

Training reads one endless, seeded stream (one permutation of all rows per epoch);
validation reads batches in row order, cached when they fit ``train.cache_max_mb``.
"""

from __future__ import annotations

import numpy as np

from pipelines.tf_runtime import tensorflow


def fits_in_cache(nbytes: int, cache_max_mb: int) -> bool:
    """Whether the validation arrays fit the cache budget: the cache is a second copy of them."""
    return nbytes <= cache_max_mb * 2**20


def steps_per_epoch(rows: int, global_batch: int) -> int:
    """Batches in one pass over ``rows`` rows, the last one partial."""
    return -(-rows // global_batch)


def training_stream(
    features: np.ndarray, labels: np.ndarray, global_batch: int, seed: int, first_epoch: int = 0
):
    """Endless training batches; each run of ``steps_per_epoch`` of them is one epoch.

    ``first_epoch`` (0-based) is where a resumed training starts: its epochs get the orders an
    uninterrupted training gives them.

    Every epoch is one seeded permutation of all rows (each row once, a fresh order each
    epoch, the same orders for the same seed). The epoch's rows are gathered in that order
    with one op, and its batches are then plain slices of the result. fit() is given
    ``steps_per_epoch`` and keeps one iterator for the whole training, so the prefetch has
    the next epoch's first batches ready while validation runs. A finite dataset makes Keras
    start a new iterator every epoch, and with tf.data's element-wise
    ``shuffle(len(features))`` each start refilled the buffer row by row before the first
    batch could come out; gathering each batch with its own op costs the train step more
    than slicing one gathered epoch (bench/train_speed.py).
    """
    tf, _ = tensorflow()
    rows = len(features)
    full = rows // global_batch
    cut = full * global_batch
    features, labels = tf.constant(features), tf.constant(labels.astype("float32"))

    def permutation(draw):
        key = tf.stack([draw, tf.constant(seed, tf.int64)])
        return tf.random.experimental.stateless_shuffle(tf.range(rows, dtype=tf.int64), key)

    def batches_of(order):
        shuffled_features, shuffled_labels = tf.gather(features, order), tf.gather(labels, order)
        batches = tf.data.Dataset.from_tensor_slices(
            (
                tf.reshape(shuffled_features[:cut], (full, global_batch, -1)),
                tf.reshape(shuffled_labels[:cut], (full, global_batch)),
            )
        )
        if rows % global_batch:
            rest = (shuffled_features[cut:], shuffled_labels[cut:])
            batches = batches.concatenate(tf.data.Dataset.from_tensors(rest))
        return batches

    dataset = (
        tf.data.Dataset.random(seed=seed)  # one draw per epoch, the same draws for the same seed
        .skip(first_epoch)
        .map(permutation)
        .flat_map(batches_of)
    )
    return _prefetched(tf, dataset)


def evaluation_dataset(features: np.ndarray, labels: np.ndarray, global_batch: int, cache: bool):
    """Batches in row order; ``cache`` keeps them after the first pass instead of re-slicing."""
    tf, _ = tensorflow()
    dataset = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
    dataset = dataset.batch(global_batch)
    return _prefetched(tf, dataset.cache() if cache else dataset)


def _prefetched(tf, dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
