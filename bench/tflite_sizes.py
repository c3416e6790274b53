"""Where the bytes of a TFLite file go: the size accounting behind bench/quantize_variants.py."""

from __future__ import annotations


def flatbuffer_utils():
    """LiteRT's flatbuffer tools (TensorFlow's copy where no LiteRT wheel exists)."""
    try:
        from ai_edge_litert.tools import flatbuffer_utils as utils
    except ImportError:
        from tensorflow.lite.tools import flatbuffer_utils as utils
    return utils


def size_breakdown(tflite_model: bytes) -> dict:
    """Where the bytes of a TFLite flatbuffer go, so that size ratios can be explained.

    Per tensor: its constant data (weights and biases; activations have none) and its
    quantization parameters, which the TFLite schema stores as a float32 scale and an int64
    zero point per channel (plus float32 min/max where present). Then the metadata buffers,
    constant data that repeats an earlier buffer byte for byte (a duplicated constant), and the
    rest: the graph itself (tensor and operator tables, names, shapes, signature, padding).
    """
    utils = flatbuffer_utils()
    model = utils.convert_bytearray_to_object(bytearray(tflite_model))
    tensors, buffers, seen, duplicated = [], set(), set(), 0
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            # Tensors sharing one buffer store it once: only the first of them counts it.
            data_bytes = 0 if data is None or tensor.buffer in buffers else len(data)
            buffers.add(tensor.buffer)
            if data_bytes:
                content = bytes(data)
                duplicated += data_bytes if content in seen else 0
                seen.add(content)
            params = tensor.quantization
            quant_bytes = 0
            if params is not None:
                quant_bytes = 8 * len(_or_empty(params.zeroPoint)) + 4 * sum(
                    len(_or_empty(values)) for values in (params.scale, params.min, params.max)
                )
            tensors.append(
                {
                    "tensor": (tensor.name or b"").decode(),
                    "dtype": utils.type_to_name(tensor.type),
                    "shape": [int(n) for n in _or_empty(tensor.shape)],
                    "data_bytes": data_bytes,
                    "quantization_bytes": quant_bytes,
                }
            )
    metadata_bytes = sum(
        len(_or_empty(model.buffers[entry.buffer].data)) for entry in model.metadata or []
    )
    data_bytes = sum(row["data_bytes"] for row in tensors)
    quant_bytes = sum(row["quantization_bytes"] for row in tensors)
    return {
        "file_bytes": len(tflite_model),
        "tensor_data_bytes": data_bytes,
        "quantization_bytes": quant_bytes,
        "metadata_bytes": metadata_bytes,
        "duplicated_constant_bytes": duplicated,
        "structure_bytes": len(tflite_model) - data_bytes - quant_bytes - metadata_bytes,
        "tensors": tensors,
    }


def _or_empty(values):
    return [] if values is None else values
