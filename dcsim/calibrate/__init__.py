"""``dcsim calibrate``: time real PyTorch layers on this machine's CPU or GPU and write a profile.

Only :mod:`dcsim.calibrate.harness`, :mod:`~dcsim.calibrate.cases`, :mod:`~dcsim.calibrate.timing` and
:mod:`~dcsim.calibrate.torch_models` import torch (PyTorch is optional: ``pip install -e ".[calibrate]"``).
:mod:`~dcsim.calibrate.grid` (what is measured) and :mod:`~dcsim.calibrate.report` (the error report) need
numpy only.
"""
