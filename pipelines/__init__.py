"""Retraining pipeline for imbalanced tabular binary classification.

One module per stage (``python -m pipelines.<stage>``: read, core, write), each stage's helpers
in modules of their own concern, and shared modules (``config``, ``paths``, ``contracts``,
``reports``, ``gates``, ``metrics``, ``schema``, ``io``, ``stage``, ...). Stages never import
each other. The README's "Layout" section maps every module.
"""
