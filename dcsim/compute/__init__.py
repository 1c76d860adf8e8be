"""Compute cost model: how long an op takes on a device (numpy only; never imports torch).

``predict(op, device_id)`` returns seconds from a roofline with size-dependent efficiencies fitted to
the device's calibration profile (``calibration/profiles/<device-id>.json``, written by
``dcsim calibrate``), or from datasheet priors (``data/priors.yaml``) where no profile exists;
``prediction_basis(device_id)`` says which. See ``docs/compute.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from dcsim.compute.calibration import ErrorRow, fit_profile, heldout_errors, split_heldout
from dcsim.compute.fit import fit_roofline
from dcsim.compute.ops import (
    BYTES_PER_ELEMENT,
    Attention,
    Conv2d,
    Embedding,
    Matmul,
    Normalization,
    Op,
    Pointwise,
    Pool2d,
    op_from_dict,
)
from dcsim.compute.predictor import CostModel, DeviceModel, default_profile_dirs
from dcsim.compute.profile import (
    EndToEnd,
    Measurement,
    Profile,
    ProfileError,
    load_profile,
    merge_profiles,
    save_profile,
)
from dcsim.compute.roofline import FloatArray, RooflineFit

__all__ = [
    "BYTES_PER_ELEMENT",
    "Attention",
    "Conv2d",
    "CostModel",
    "DeviceModel",
    "Embedding",
    "EndToEnd",
    "ErrorRow",
    "Matmul",
    "Measurement",
    "Normalization",
    "Op",
    "Pointwise",
    "Pool2d",
    "Profile",
    "ProfileError",
    "RooflineFit",
    "default_cost_model",
    "default_profile_dirs",
    "fit_profile",
    "fit_roofline",
    "heldout_errors",
    "load_profile",
    "merge_profiles",
    "op_from_dict",
    "predict",
    "predict_many",
    "prediction_basis",
    "save_profile",
    "split_heldout",
]


@functools.cache
def default_cost_model() -> CostModel:
    """The process-wide :class:`CostModel` over :func:`default_profile_dirs`."""
    return CostModel()


def predict(op: Op, device_id: str) -> float:
    """Seconds ``op`` takes on accelerator ``device_id`` (a catalog id or ``host-cpu``); cached."""
    return default_cost_model().predict(op, device_id)


def predict_many(ops: Sequence[Op], device_id: str) -> FloatArray:
    """Seconds for each of ``ops`` on ``device_id``, as a numpy array (vectorised per op class)."""
    return default_cost_model().predict_many(ops, device_id)


def prediction_basis(device_id: str) -> str:
    """``measured`` if ``device_id`` has a calibration profile, ``inherited`` if it has the measured fits of the
    accelerator it is ``based_on`` (rescaled to its own peaks), ``prior`` if it is costed from its datasheet and
    the assumptions in ``dcsim/compute/data/priors.yaml``."""
    return default_cost_model().prediction_basis(device_id)
