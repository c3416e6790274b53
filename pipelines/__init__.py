"""Retraining pipeline for imbalanced tabular binary classification.

One module per stage (``python -m pipelines.<stage>``), plus shared helpers:
``config`` (typed params), ``paths`` (every file location), ``io`` (atomic writes),
``stage`` (entry-point runner), ``schema`` and ``features``.
"""
