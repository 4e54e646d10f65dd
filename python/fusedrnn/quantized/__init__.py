"""Quantized inference for fusedrnn's layers and cells: int8 weights with per-row scales
(dynamic per-row activation quantization) and 16-bit (float16 / bfloat16) weights.

The exact NumPy specification of the arithmetic is :mod:`fusedrnn.quantized.reference`.
"""
