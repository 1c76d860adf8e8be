"""A compression method in one file (tests/test_compression_methods.py): a quantization method whose search
evaluates 3 candidate grids, one forward pass each, and stores int4 weights only."""

from __future__ import annotations

from dcsim.compression.method import QuantizationMethod, register_compression_method


@register_compression_method("toy_grid")
class ToyGrid(QuantizationMethod):
    """int4 weights found by a 3-point grid search over the calibration tokens (a test fixture)."""

    weights = ("int4",)
    calibration_passes = 3
    source = "tests/toy_compression_method.py (a test fixture)"
