"""The ``accelerators:`` section: accelerators a scenario declares, usable wherever a catalog id is.

Each entry has the catalog's fields (``dcsim/catalog/data/accelerators.yaml``). With ``based_on: <catalog id>``
every field it leaves out is the base entry's, and the cost model inherits the base's calibrated curves,
rescaled to the declared peaks and bandwidth (:func:`dcsim.compute.predictor.inherited_fits`); without it the
fields of :data:`REQUIRED` must be given and the device is costed from its kind's priors, as a catalog device
without a profile is. A field given replaces the base's whole (``peak_tflops`` is one field: give every
precision the device has). The declared accelerators are in the catalog only while their scenario is validated
or run (:func:`dcsim.catalog.declared_accelerators`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator

from dcsim.catalog import Accelerator, catalog_files
from dcsim.errors import Problem, short_repr
from dcsim.scenario.fields import Flag, InterconnectId, Number
from dcsim.scenario.problems import problems_from
from dcsim.scenario.schema import MAX_NODE_USD_PER_HOUR, MAX_POWER_W, Section

#: Precisions a peak may be given for (those dcsim prices ops in).
PRECISIONS = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")
#: Fields an accelerator needs: declared, or inherited from its ``based_on`` entry.
REQUIRED = ("kind", "peak_tflops", "memory_gib", "memory_bandwidth_gb_per_s", "interconnect")
#: The source of a declared figure whose declaration names none.
DECLARED_SOURCE = "declared in the scenario (no source given)"
#: Upper bounds, orders of magnitude beyond any device, so that a unit slip cannot overflow the sums built on
#: them: peak (10^12 FLOP/s; a B200 does 4,500 dense fp8), memory (GiB; the largest CPU sockets hold a few
#: TiB) and bandwidth (GB/s; HBM3e stacks give 8,000 per GPU).
MAX_PEAK_TFLOPS = 1e6
MAX_MEMORY_GIB = 1e6
MAX_BANDWIDTH_GB_PER_S = 1e6

PeakTflops = Annotated[Number, Field(gt=0, le=MAX_PEAK_TFLOPS)]


def _known_precision(value: str) -> str:
    if value not in PRECISIONS:
        raise ValueError(f"unknown precision (known: {', '.join(PRECISIONS)})")
    return value


Precision = Annotated[str, AfterValidator(_known_precision)]


class AcceleratorSpec(Section):
    """One declared accelerator: the catalog's fields (units in their names), all optional with ``based_on``."""

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    based_on: str | None = None
    name: str | None = Field(default=None, min_length=1)
    kind: Literal["gpu", "tpu", "cpu"] | None = None
    peak_tflops: dict[Precision, PeakTflops] | None = None
    sparse_2_4: Flag | None = None
    memory_gib: Number | None = Field(default=None, gt=0, le=MAX_MEMORY_GIB)
    memory_bandwidth_gb_per_s: Number | None = Field(default=None, gt=0, le=MAX_BANDWIDTH_GB_PER_S)
    interconnect: InterconnectId | None = None
    idle_w: Number | None = Field(default=None, ge=0, le=MAX_POWER_W)
    max_w: Number | None = Field(default=None, gt=0, le=MAX_POWER_W)
    usd_per_hour: Number | None = Field(default=None, ge=0, le=MAX_NODE_USD_PER_HOUR)
    source: dict[str, str] = Field(default_factory=dict)

    @field_validator("based_on")
    @classmethod
    def _catalog_id(cls, value: str | None) -> str | None:
        known = catalog_files().accelerators
        if value is not None and value not in known:
            raise ValueError(
                f"unknown accelerator {short_repr(value)}: based_on names a catalog id (see `dcsim catalog`: "
                f"{', '.join(known)}), not one declared in the scenario"
            )
        return value

    @field_validator("peak_tflops")
    @classmethod
    def _precisions(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("give the peak of at least one precision")
        return value

    @field_validator("source")
    @classmethod
    def _source_fields(cls, value: dict[str, str]) -> dict[str, str]:
        names = [f.name for f in fields(Accelerator) if f.name not in ("id", "source")]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{short_repr(unknown[0])} is not a field with a figure (fields: {', '.join(names)})")
        return value


def declared_section(raw: Any) -> tuple[list[AcceleratorSpec], list[Problem], set[str]]:
    """(the valid entries of a scenario's ``accelerators`` list, one problem per wrong field, the ids of the
    entries that have problems). A section that is not a list of mappings is left to the scenario's own schema,
    which names it."""
    if not isinstance(raw, list):
        return [], [], set()
    specs: list[AcceleratorSpec] = []
    problems: list[Problem] = []
    broken: set[str] = set()
    first: dict[str, int] = {}
    catalog = catalog_files().accelerators
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            continue
        path = f"accelerators[{index}]"
        found: list[Problem] = []
        spec: AcceleratorSpec | None = None
        try:
            spec = AcceleratorSpec.model_validate(dict(item))
        except ValidationError as error:
            found += problems_from(error, path, AcceleratorSpec)
        acc_id = item.get("id")
        if isinstance(acc_id, str) and acc_id in catalog:
            found.append(
                Problem(
                    f"{path}.id",
                    f"{short_repr(acc_id)} is a catalog id: give the declared accelerator its own id "
                    f"(based_on: {acc_id} inherits its figures)",
                )
            )
        elif isinstance(acc_id, str) and acc_id in first:
            twice = f"{short_repr(acc_id)} is declared twice (accelerators[{first[acc_id]}])"
            found.append(Problem(f"{path}.id", twice))
        elif isinstance(acc_id, str):
            first[acc_id] = index
        found += _inheritance_problems(item, path)
        if found:
            problems += found
            if isinstance(acc_id, str):
                broken.add(acc_id)
        elif spec is not None:
            specs.append(spec)
    return specs, problems, broken


def _inheritance_problems(item: Mapping[str, Any], path: str) -> list[Problem]:
    """Without ``based_on``: one problem per :data:`REQUIRED` field the entry leaves out. With a valid one: a
    ``kind`` other than the base's (the inherited curves are the base kind's). Read from the raw entry, so that
    they are reported with its other problems."""
    based_on = item.get("based_on")
    if based_on is None:
        return [
            Problem(f"{path}.{name}", "required field is missing (or give based_on: a catalog id to inherit it from)")
            for name in REQUIRED
            if item.get(name) is None
        ]
    base = catalog_files().accelerators.get(based_on) if isinstance(based_on, str) else None
    kind = item.get("kind")
    if base is not None and kind in ("gpu", "tpu", "cpu") and kind != base.kind:
        return [Problem(f"{path}.kind", f"must be {base.kind!r}, the kind of its based_on {base.id}")]
    return []


def resolve(spec: AcceleratorSpec) -> Accelerator:
    """The catalog record of a valid declaration: its fields, else its base's (sources say which)."""
    base = catalog_files().accelerators[spec.based_on] if spec.based_on is not None else None
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for field in fields(Accelerator):
        name = field.name
        if name in ("id", "name", "source", "based_on"):
            continue
        given = getattr(spec, name)
        if given is not None:
            values[name] = given
            source[name] = spec.source.get(name, DECLARED_SOURCE)
        elif base is not None:
            values[name] = getattr(base, name)
            if name in base.source:
                source[name] = f"inherited from {base.id}: {base.source[name]}"
        else:
            values[name] = False if name == "sparse_2_4" else None  # REQUIRED fields were checked
    if base is not None:
        source["based_on"] = spec.source.get("based_on", DECLARED_SOURCE)
    values["peak_tflops"] = MappingProxyType(dict(values["peak_tflops"]))
    name = spec.name or (f"{spec.id} (based on {base.name})" if base is not None else spec.id)
    return Accelerator(id=spec.id, name=name, source=MappingProxyType(source), based_on=spec.based_on, **values)


def resolve_all(specs: Sequence[AcceleratorSpec]) -> tuple[Accelerator, ...]:
    """The catalog records of valid declarations (see :func:`resolve`)."""
    return tuple(resolve(spec) for spec in specs)
