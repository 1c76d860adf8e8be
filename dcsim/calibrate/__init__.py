"""``dcsim calibrate``: time real PyTorch layers on this machine's CPU or GPU and write a profile.

Only :mod:`dcsim.calibrate.harness`, :mod:`~dcsim.calibrate.cases`, :mod:`~dcsim.calibrate.timing`,
:mod:`~dcsim.calibrate.torch_models` and :mod:`~dcsim.calibrate.torch_llama` import torch (PyTorch is optional:
``pip install -e ".[calibrate]"``). :mod:`~dcsim.calibrate.grid` (what is measured),
:mod:`~dcsim.calibrate.e2e_models` (the end-to-end cases and the op lists that price them) and
:mod:`~dcsim.calibrate.report` (the error report) need numpy only.
"""
