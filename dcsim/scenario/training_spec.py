"""The ``kind: training`` workload section (contract v1): a model trained with a parallel plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from dcsim.compression.recipe import Recipe, RecipeField
from dcsim.errors import Problem
from dcsim.scenario.fields import AcceleratorId, Count, Flag, Integer, Number
from dcsim.scenario.schema import Section
from dcsim.scenario.training_options import Overlap
from dcsim.scenario.workloads import WorkloadSpec, accelerators_by_type, admitting_nodes, register_workload_kind

if TYPE_CHECKING:
    from dcsim.models import ModelConfig
    from dcsim.parallel.plan import ParallelPlan
    from dcsim.parallel.step import TrainingSetup
    from dcsim.scenario.schema import Scenario


def _split_kind(value: Any) -> str:
    return "name" if isinstance(value, str) else "list[int]"


#: ``auto``/``balanced``, or whole numbers >= 0; only the errors of the form given are reported
LayersPerStage = Annotated[
    Annotated[list[Annotated[Count, Field(ge=0)]], Tag("list[int]")]
    | Annotated[Literal["auto", "balanced"], Tag("name")],
    Discriminator(_split_kind),
]


class Parallelism(Section):
    """A parallel plan (see :class:`dcsim.parallel.ParallelPlan`); ``fsdp: true`` is ZeRO stage 3.
    ``layers_per_stage``: the transformer layers of each pipeline stage (``pp`` counts, or ``pp *
    virtual_stages``), ``auto`` (even where the stages divide the layers, else balanced) or ``balanced``."""

    dp: Count = Field(default=1, ge=1)
    tp: Count = Field(default=1, ge=1)
    pp: Count = Field(default=1, ge=1)
    ep: Count = Field(default=1, ge=1)
    microbatch_size: Count = Field(default=1, ge=1)
    schedule: Literal["1f1b", "interleaved", "gpipe"] = "1f1b"
    virtual_stages: Count = Field(default=1, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 0
    fsdp: Flag = False
    recompute: Literal["none", "selective", "full"] = "none"
    sequence_parallel: Flag = False
    overlap_dp: Flag = True
    cp: Count = Field(default=1, ge=1)
    layers_per_stage: LayersPerStage = "auto"

    @model_validator(mode="after")
    def _consistent(self) -> Parallelism:
        if self.fsdp and self.zero_stage not in (0, 3):
            raise ValueError("fsdp is ZeRO stage 3; give one of fsdp and zero_stage")
        self.plan()  # ParallelPlan's own checks (virtual stages need interleaved, ep divides dp)
        return self

    def plan(self) -> ParallelPlan:
        """The :class:`~dcsim.parallel.ParallelPlan` this section describes."""
        from dcsim.parallel.plan import ParallelPlan

        return ParallelPlan(
            dp=self.dp,
            tp=self.tp,
            pp=self.pp,
            ep=self.ep,
            microbatch_size=self.microbatch_size,
            schedule=self.schedule,
            virtual_stages=self.virtual_stages,
            zero_stage=3 if self.fsdp else self.zero_stage,
            recompute=self.recompute,
            sequence_parallel=self.sequence_parallel,
            overlap_dp=self.overlap_dp,
            cp=self.cp,
            layers_per_stage=self.layers_per_stage
            if isinstance(self.layers_per_stage, str)
            else tuple(self.layers_per_stage),
        )


@register_workload_kind("training", runner="dcsim.run.training_runner:TrainingRunner")
class TrainingWorkload(WorkloadSpec):
    """Train ``model`` (a zoo id or an inline architecture) with ``parallelism`` on the accelerators of one
    node type (``accelerator`` picks it when several types exist), for ``tokens`` (or ``steps``) of
    ``global_batch_size`` sequences of ``seq_len`` tokens. The job goes through the cluster scheduler like
    any other: it waits for ``dp * tp * cp * pp`` accelerators, the placement policy picks them, and its step
    time is priced on the accelerators it got. ``fidelity`` ``detailed`` simulates the pipeline microbatch
    by microbatch, ``fast`` uses the closed form. ``target_loss`` adds a time-to-target-loss estimate from
    a published scaling law (a model, labelled as such). ``compression`` trains what a recipe makes of the
    model: a distillation ``student`` (the workload's ``model`` is the teacher, whose forward pass runs on
    every microbatch), or the model with fewer MLP channels or layers (structured pruning, layer dropping).
    ``attention`` (``flash`` | ``eager``) is the attention kernel; by default ``flash`` where the accelerator
    supports it (:mod:`dcsim.parallel.attention`)."""

    kind: Literal["training"] = "training"
    model: str | dict[str, Any]
    precision: Literal["fp32", "tf32", "bf16", "fp16", "fp8"] = "bf16"
    parallelism: Parallelism = Field(default_factory=Parallelism)
    global_batch_size: Count = Field(ge=1)
    seq_len: Count | None = Field(default=None, ge=1)
    tokens: Number | None = Field(default=None, gt=0)
    steps: Count | None = Field(default=None, ge=1)
    optimizer: Literal["adamw", "sgd", "adafactor"] = "adamw"
    attention: Literal["flash", "eager"] | None = None
    arrival_s: Number = Field(default=0.0, ge=0)
    accelerator: AcceleratorId | None = None
    fidelity: Literal["fast", "detailed"] = "detailed"
    target_loss: Number | None = Field(default=None, gt=0)
    compression: RecipeField = Field(default_factory=Recipe)
    team: str | None = None
    priority: Integer = 0
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[str] = Field(default_factory=list)
    fp8_attention: Flag = False
    overlap: Overlap = Field(default_factory=Overlap)
    cuda_graphs: Flag = False

    @field_validator("fp8_attention")
    @classmethod
    def _fp8_only(cls, fp8_attention: bool, info: ValidationInfo) -> bool:
        if fp8_attention and info.data.get("precision") != "fp8":
            raise ValueError("needs precision: fp8 (it runs the attention core of the fp8 recipe in fp8)")
        return fp8_attention

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str | dict[str, Any]) -> str | dict[str, Any]:
        from dcsim.models.zoo import model_from_spec

        try:
            model_from_spec(model)
        except KeyError as error:
            raise ValueError(str(error.args[0])) from None
        return model

    @field_validator("compression")
    @classmethod
    def _trainable_recipe(cls, recipe: Recipe) -> Recipe:
        if recipe.quantization is not None:
            raise ValueError(
                "quantization: quantization-aware training is not modelled; quantize the trained model where it "
                "is served (an inference workload's compression)"
            )
        if recipe.pruning is not None and recipe.pruning.pattern != "structured":
            raise ValueError("pruning.pattern: training models structured pruning only (fewer channels or layers)")
        if recipe.pruning is not None and recipe.pruning.target == "heads":
            raise ValueError(
                "pruning.target: pruned attention heads are not modelled for training (channels or layers)"
            )
        return recipe

    @model_validator(mode="after")
    def _one_length(self) -> TrainingWorkload:
        if (self.tokens is None) == (self.steps is None):
            raise ValueError("give exactly one of tokens and steps")
        return self

    def model_config_obj(self) -> ModelConfig:
        """The architecture trained: the model (zoo entry or inline), or what the compression recipe makes of
        it (a distilled student, fewer channels or layers)."""
        from dcsim.models.zoo import model_from_spec

        model = model_from_spec(self.model)
        if self.compression.empty:
            return model
        from dcsim.compression import apply_recipe

        return apply_recipe(model, self.compression, "bf16").config

    def teacher(self) -> ModelConfig | None:
        """The teacher of a distillation recipe (the workload's ``model``), else None."""
        from dcsim.models.zoo import model_from_spec

        if self.compression.distillation is None:
            return None
        return model_from_spec(self.model)

    def setup(self, accelerator: str) -> TrainingSetup:
        """The plan-independent description of this training run on ``accelerator``."""
        from dcsim.parallel.step import TrainingSetup

        model = self.model_config_obj()
        seq_len = self.seq_len or model.default_seq_len
        return TrainingSetup(
            model,
            accelerator,
            self.global_batch_size,
            seq_len,
            self.precision,
            self.optimizer,
            self.teacher(),
            attention=self.attention,
            fp8_attention=self.fp8_attention,
            overlap=self.overlap.options(),
            cuda_graphs=self.cuda_graphs,
        )

    def pool(self, scenario: Scenario) -> tuple[str, int] | None:
        """(accelerator id, accelerators) of the node types this job may use, or None if none match."""
        nodes = admitting_nodes(scenario, self.node_selector, self.tolerations)
        pools = accelerators_by_type([n for n in nodes if self.accelerator in (None, n.accelerator)])
        if not pools:
            return None
        accelerator = max(pools, key=lambda a: pools[a])
        return accelerator, pools[accelerator]

    def check(self, scenario: Scenario) -> list[Problem]:
        pool = self.pool(scenario)
        if pool is None:
            field = "accelerator" if self.accelerator is not None else "node_selector"
            return [Problem(field, "no node type matches this workload's accelerator, node_selector and tolerations")]
        accelerator, available = pool
        plan = self.parallelism.plan()
        problems = []
        if plan.world_size > available:
            field = "parallelism.cp" if plan.cp > 1 and plan.world_size // plan.cp <= available else "parallelism"
            degrees = "dp * tp * cp * pp" if plan.cp > 1 else "dp * tp * pp"
            problems.append(
                Problem(
                    field,
                    f"{degrees} = {plan.world_size} accelerators, but the {accelerator} nodes have {available}",
                )
            )
        if self.attention == "flash":
            from dcsim.catalog import load_catalog
            from dcsim.parallel.attention import supports_flash_attention

            if not supports_flash_attention(load_catalog().accelerator(accelerator)):
                problems.append(
                    Problem(
                        "attention",
                        f"flash needs an Ampere-or-later GPU (a gpu with bf16 tensor throughput); {accelerator} "
                        "has none: use eager",
                    )
                )
        from dcsim.parallel.step import check_plan

        try:
            setup = self.setup(accelerator)
        except ValueError as error:
            return [*problems, Problem("model", str(error))]
        problems += [Problem(path, message) for path, message in check_plan(setup, plan)]
        return problems
