"""Batching policies: what a serving replica runs at each iteration boundary (see ``docs/serving.md``).

One class per policy, one module each, registered in :data:`BATCH_POLICIES` (``static``, ``orca`` alias
``continuous``, ``vllm``, ``sarathi`` alias ``chunked``, ``trtllm``); a scenario's ``batching.policy`` names
one, or ``module:Class`` for your own :class:`BatchPolicy` subclass.
"""

from dcsim.serving.batching.base import (
    BATCH_POLICIES,
    BatchPolicy,
    make_batch_policy,
    register_batch_policy,
    resolve_batch_policy,
)
from dcsim.serving.batching.orca import Orca
from dcsim.serving.batching.sarathi import Sarathi
from dcsim.serving.batching.static import Static
from dcsim.serving.batching.trtllm import TrtLlm
from dcsim.serving.batching.vllm import Vllm

__all__ = [
    "BATCH_POLICIES",
    "BatchPolicy",
    "Orca",
    "Sarathi",
    "Static",
    "TrtLlm",
    "Vllm",
    "make_batch_policy",
    "register_batch_policy",
    "resolve_batch_policy",
]
