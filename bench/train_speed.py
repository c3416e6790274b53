"""Train-stage throughput against a bare ``model.fit``, side by side in one run.

Same data (the simulator's default days, cleaned and split as the pipeline does, the training
split transformed by the stage's FeatureTransform with ``train.categorical_encoding``), same
model (``build_model`` from params.yaml, embeddings included when the encoding is
``embedding``), per-replica batch, epochs and seed. Throughput is training rows x epochs / the
seconds of ``fit()``, validation included, which is how the stage reports
``samples_per_second``:

* stage: ``pipelines.train.train()`` with strategy ``default``, one batch per compiled call
  (``steps_per_execution`` 1, like the bare side) and every callback main() uses
  (early stopping, ReduceLROnPlateau, the per-epoch backup, TensorBoard logs, the epoch log),
  writing into a temporary folder; early-stopping patience is set to the epoch count so both
  sides run the same number of epochs;
* bare: ``model.fit`` on ``from_tensor_slices -> shuffle -> batch -> prefetch``, no callbacks;
* the stage again with params.yaml's ``steps_per_execution``, as ``make run`` trains;
* mirrored: ``train()`` with strategy ``mirrored`` on two logical CPU devices, in a
  subprocess, since logical devices must be set before TensorFlow initialises (params.yaml's
  ``steps_per_execution``, which the stage's guard brings to 1 there).

The runs alternate ``--repeats`` times and the best of each is compared: on a shared machine
interference only ever slows a run down.

Input wait, two ways, for the stage's training stream and for the bare pipeline, each fed to
fit as its side feeds it (training only, no validation or callbacks, after a warm-up fit):

* upper bound: seconds to iterate one epoch of the dataset alone / seconds of one epoch of
  ``fit`` (the share of the step if none of the input work overlapped with compute);
* profiled: from a TF Profiler trace of 5 epochs, time inside the ``IteratorGetNext`` op
  (the train step blocked on, or taking over, its next batch) / time of the train steps,
  and the part of it spent on the first batch of each epoch. That is the input time of the
  profiler's input-pipeline analysis, read here from the raw trace since the profile plugin
  is not installed. The op has a cost of its own, tracer included, even when the batch is
  ready: about 50 us, some 5% of a 1 ms step here, measured as the floor (the same model fed
  one ready batch over and over); the figure above that floor is what the input pipeline
  adds. The tracer also slows every element an element-wise pipeline touches, so a buffer
  refilled row by row looks slower traced than it is.

    python -m bench.train_speed [--epochs 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import default_params, simulated
from pipelines.batches import steps_per_epoch, training_stream
from pipelines.config import Params, TrainParams
from pipelines.features import FeatureTransform
from pipelines.model import build_model
from pipelines.split import split
from pipelines.tf_runtime import tensorflow
from pipelines.train import train


def bench_inputs(params: Params, epochs: int):
    frame, schema = simulated(params)
    train_frame, val, _ = split(frame, schema, params.split, params.seed)
    cfg = params.train.model_copy(
        update={"strategy": "default", "epochs": epochs, "early_stopping_patience": epochs}
    )
    return train_frame, val, schema, cfg


def stage_model(transform: FeatureTransform, cfg: TrainParams):
    """The model train() builds on one CPU device: the transform's encoding decides the input.

    With ``embedding`` the last columns are codes that the model embeds; building it without
    ``levels`` would train a plain MLP on them, a different (and cheaper) model.
    """
    levels = transform.levels if transform.encoding == "embedding" else []
    return build_model(transform.width, cfg, levels=levels)


def stage_run(params: Params, inputs, **changes) -> dict:
    train_frame, val, schema, cfg = inputs
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            train_frame,
            val,
            schema,
            cfg.model_copy(update=changes),
            params.seed,
            backup_dir=Path(tmp) / "backup",
            tensorboard_dir=Path(tmp) / "tensorboard",
        )
    return result.report


def bare_run(params: Params, inputs) -> dict:
    tf, keras = tensorflow()
    train_frame, val, schema, cfg = inputs
    transform = FeatureTransform.fit(train_frame, schema, cfg.categorical_encoding)
    x, y = transform.transform(train_frame), train_frame[schema.target].to_numpy("float32")
    xv, yv = transform.transform(val), val[schema.target].to_numpy("float32")
    keras.utils.set_random_seed(params.seed)
    model = stage_model(transform, cfg)
    dataset = bare_dataset(x, y, cfg.batch_size, params.seed)
    validation = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(cfg.batch_size)
    started = time.perf_counter()
    model.fit(dataset, validation_data=validation, epochs=cfg.epochs, verbose=0)
    seconds = time.perf_counter() - started
    return {"samples_per_second": round(len(x) * cfg.epochs / seconds, 1)}


def bare_dataset(x: np.ndarray, y: np.ndarray, batch: int, seed: int):
    """The reference pipeline: tf.data's element-wise shuffle, a new iterator every epoch."""
    tf, _ = tensorflow()
    return (
        tf.data.Dataset.from_tensor_slices((x, y.astype("float32")))
        .shuffle(len(x), seed=seed)
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )


def input_wait(params: Params, inputs, repeats: int) -> dict[str, dict]:
    """Input wait of the stage's training stream and of the bare pipeline, same model."""
    train_frame, _, schema, cfg = inputs
    transform = FeatureTransform.fit(train_frame, schema, cfg.categorical_encoding)
    x, y = transform.transform(train_frame), train_frame[schema.target].to_numpy()
    steps = steps_per_epoch(len(x), cfg.batch_size)
    stage = training_stream(x, y, cfg.batch_size, params.seed)
    bare = bare_dataset(x, y, cfg.batch_size, params.seed)
    # No input work at all: one batch, ready, handed over again and again. What the trace
    # finds in IteratorGetNext here is the op's own cost (and the tracer's), a floor that
    # no input pipeline can go under.
    ready = bare.take(1).cache().repeat()
    return {
        # The stage's stream is endless: fit runs it steps_per_epoch at a time. The bare
        # dataset is one epoch long; with steps_per_epoch equal to that, Keras still starts a
        # new iterator every epoch, as without it.
        "stage": profile_input(stage.take(steps), stage, steps, transform, cfg, params, repeats),
        "bare": profile_input(bare, bare, steps, transform, cfg, params, repeats),
        "floor": profile_input(ready.take(steps), ready, steps, transform, cfg, params, repeats),
    }


def profile_input(
    one_epoch,
    dataset,
    steps: int,
    transform: FeatureTransform,
    cfg: TrainParams,
    params: Params,
    repeats: int,
) -> dict:
    tf, keras = tensorflow()
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    keras.utils.set_random_seed(params.seed)
    model = stage_model(transform, cfg)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)  # trace, warm up

    def iterate() -> float:
        # The Python loop itself costs 10-14 ms per 263 batches (timed on Dataset.range), which
        # is part of this bound; reduce() or a tf.function loop cost more, not less.
        started = time.perf_counter()
        for _ in one_epoch:
            pass
        return time.perf_counter() - started

    def fit_epoch() -> float:
        started = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        return time.perf_counter() - started

    # Minimum of repeats: on a shared machine interference only adds time.
    alone = min(iterate() for _ in range(repeats))
    epoch = min(fit_epoch() for _ in range(repeats))
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(dataset, epochs=repeats, steps_per_epoch=steps, verbose=0)
        tf.profiler.experimental.stop()
        (trace,) = Path(logdir).rglob("*.xplane.pb")
        space = xplane_pb2.XSpace.FromString(trace.read_bytes())
    spans: dict[str, list[tuple[int, int]]] = {
        "train_function": [],
        "IteratorGetNextOp::DoCompute": [],
    }
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name in spans:
                    start = line.timestamp_ns * 1000 + event.offset_ps
                    spans[name].append((start, event.duration_ps))
    step_ps = sum(duration for _, duration in spans["train_function"])
    waits = [duration for _, duration in sorted(spans["IteratorGetNextOp::DoCompute"])]
    return {
        "step_ms": 1000 * epoch / steps,
        "input_alone_ms": 1000 * alone / steps,
        "upper_bound": alone / epoch,
        "profiled": sum(waits) / step_ps,
        # The first batch of each epoch: where a pipeline restarted every epoch waits most.
        "epoch_starts": sum(waits[::steps]) / step_ps,
    }


def mirrored_child(epochs: int) -> None:
    """Runs in a subprocess: two logical CPU devices, then the stage with strategy mirrored."""
    tf, _ = tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    params = default_params()
    train_frame, val, schema, cfg = bench_inputs(params, epochs)
    report = stage_run(params, (train_frame, val, schema, cfg), strategy="mirrored")
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mirrored-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.mirrored_child:
        mirrored_child(args.epochs)
        return
    params = default_params()
    inputs = bench_inputs(params, args.epochs)
    cfg = inputs[3]
    print(
        f"{len(inputs[0])} training rows, {len(inputs[1])} validation rows, "
        f"hidden {cfg.hidden_units}, batch {cfg.batch_size}, {args.epochs} epochs, "
        f"{os.cpu_count()} CPU cores"
    )
    stage, bare, configured = [], [], []
    for _ in range(args.repeats):
        bare.append(bare_run(params, inputs)["samples_per_second"])
        stage.append(stage_run(params, inputs, steps_per_execution=1)["samples_per_second"])
        configured.append(stage_run(params, inputs)["samples_per_second"])
    wait = input_wait(params, inputs, repeats=5)
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.train_speed",
            "--mirrored-child",
            "--epochs",
            str(args.epochs),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    mirrored = json.loads(child.stdout.strip().splitlines()[-1])
    best_stage, best_bare = max(stage), max(bare)
    print(f"{'run':<44} {'samples/s':>10} {'vs bare':>8}")
    print(f"{'bare model.fit (tf.data)':<44} {best_bare:>10.0f} {1:>7.2f}x   all: {bare}")
    print(
        f"{'stage train(), default strategy, 1 step/call':<44} {best_stage:>10.0f} "
        f"{best_stage / best_bare:>7.2f}x   all: {stage}"
    )
    label = f"stage train(), params' steps_per_execution {cfg.steps_per_execution}"
    print(
        f"{label:<44} {max(configured):>10.0f} "
        f"{max(configured) / best_bare:>7.2f}x   all: {configured}"
    )
    rate = mirrored["samples_per_second"]
    print(
        f"{'stage train(), mirrored on 2 logical CPUs':<44} {rate:>10.0f} "
        f"{rate / best_bare:>7.2f}x   {rate / best_stage:.2f}x the single-device stage "
        f"(global batch {mirrored['global_batch']})"
    )
    floor = wait.pop("floor")["profiled"]
    for name, share in wait.items():
        print(
            f"input wait, {name}: step {share['step_ms']:.2f} ms, iterating the dataset alone "
            f"{share['input_alone_ms']:.2f} ms/batch (upper bound {share['upper_bound']:.1%} of "
            f"the step); TF Profiler, IteratorGetNext / train step: {share['profiled']:.1%}, "
            f"of which the first batch of each epoch {share['epoch_starts']:.1%}; "
            f"{share['profiled'] - floor:.1%} above the {floor:.1%} of a pipeline that only "
            "hands over one ready batch"
        )


if __name__ == "__main__":
    main()
