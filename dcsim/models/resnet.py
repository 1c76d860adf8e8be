"""ResNet (bottleneck, v1.5: stride on the 3x3 convolution) as an op list, for CV workloads."""

from __future__ import annotations

from dataclasses import dataclass

from dcsim.compute.ops import Conv2d, Matmul, Normalization, Op, Pointwise, Pool2d
from dcsim.models.base import LayerOp, ModelOps


@dataclass(frozen=True)
class ResNetConfig:
    """A bottleneck ResNet: ``blocks`` per stage, ``widths`` the 3x3 channels per stage (outputs are
    ``expansion`` times wider), a 7x7/2 stem of ``stem_channels`` and a ``num_classes`` classifier.
    BatchNorm runs in training mode (batch statistics), as in a training step."""

    name: str
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    expansion: int = 4
    stem_channels: int = 64
    num_classes: int = 1000
    in_channels: int = 3
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.blocks) != len(self.widths) or not self.blocks:
            raise ValueError("ResNetConfig.blocks and widths need the same, non-zero length")

    # --- the uniform model interface (images: the "sequence length" is the image side in pixels) -------

    @property
    def block_layers(self) -> int:
        """Bottleneck blocks (the repeated layers a pipeline can split)."""
        return sum(self.blocks)

    @property
    def default_seq_len(self) -> int:
        """Image side in pixels when a step does not say (224, the ImageNet training crop)."""
        return 224

    def tokens_per_sample(self, seq_len: int | None = None) -> int:
        """Samples count as one each (images, not tokens)."""
        return 1

    @property
    def experts(self) -> int:
        """Dense: 1."""
        return 1

    @property
    def experts_per_token(self) -> int:
        """Dense: 1."""
        return 1

    @property
    def moe_layers(self) -> int:
        """Dense: 0."""
        return 0

    def active_param_count(self) -> int:
        """Parameters one image's forward pass uses: all of them."""
        return self.param_count()

    def step_ops(
        self, batch: int, seq_len: int | None = None, tp: int = 1, precision: str = "fp32", ep: int = 1
    ) -> ModelOps:
        """Forward ops of one step over ``batch`` images of ``seq_len`` pixels a side (None: 224).
        ResNets are not tensor- or expert-parallel here: ``tp`` and ``ep`` must be 1."""
        _check_unsharded(self.name, tp, ep)
        return self.ops(batch, self.default_seq_len if seq_len is None else seq_len, precision)

    def ops(self, batch: int, image_size: int = 224, precision: str = "fp32") -> ModelOps:
        """Forward ops of one step over ``batch`` images of ``image_size`` x ``image_size`` pixels."""
        if batch < 1 or image_size < 32:
            raise ValueError("batch must be >= 1 and image_size >= 32")
        p = precision
        layers: list[LayerOp] = []

        def conv_bn(
            name: str, c_in: int, c_out: int, size: int, kernel: int, stride: int, relu: bool, part: str = "block"
        ) -> int:
            conv = Conv2d(batch, c_in, c_out, size, size, kernel, stride, kernel // 2, precision=p)
            out = conv.out_height
            layers.append(LayerOp(f"{name}.conv", conv, weights=True, part=part))
            bn: Op = Normalization("batchnorm", batch * out * out, c_out, p)
            layers.append(LayerOp(f"{name}.bn", bn, weights=True, part=part))
            if relu:
                layers.append(LayerOp(f"{name}.relu", Pointwise("relu", batch * c_out * out * out, p), part=part))
            return out

        size = conv_bn("stem", self.in_channels, self.stem_channels, image_size, 7, 2, relu=True, part="pre")
        pool = Pool2d("maxpool", batch, self.stem_channels, size, size, 3, 2, 1, precision=p)
        layers.append(LayerOp("stem.maxpool", pool, part="pre"))
        size = (size + 2 - 3) // 2 + 1
        channels = self.stem_channels
        for stage, (count, width) in enumerate(zip(self.blocks, self.widths, strict=True)):
            for block in range(count):
                stride = 2 if block == 0 and stage > 0 else 1
                name = f"stage{stage + 1}.block{block + 1}"
                out_channels = width * self.expansion
                conv_bn(f"{name}.conv1", channels, width, size, 1, 1, relu=True)
                new_size = conv_bn(f"{name}.conv2", width, width, size, 3, stride, relu=True)
                conv_bn(f"{name}.conv3", width, out_channels, new_size, 1, 1, relu=False)
                if block == 0:
                    conv_bn(f"{name}.downsample", channels, out_channels, size, 1, stride, relu=False)
                numel = batch * out_channels * new_size * new_size
                layers.append(LayerOp(f"{name}.residual", Pointwise("add", numel, p)))
                layers.append(LayerOp(f"{name}.relu", Pointwise("relu", numel, p)))
                channels, size = out_channels, new_size
        avgpool = Pool2d("avgpool", batch, channels, size, size, size, precision=p)
        layers.append(LayerOp("head.avgpool", avgpool, part="post"))
        fc = Matmul(batch, self.num_classes, channels, precision=p)
        layers.append(LayerOp("head.fc", fc, weights=True, bias=True, part="post"))
        loss = Normalization("softmax", batch, self.num_classes, p)
        layers.append(LayerOp("head.loss", loss, training_only=True, part="post"))
        return ModelOps(f"{self.name} b{batch} {image_size}px {precision}", tuple(layers))

    def param_count(self, tp: int = 1, ep: int = 1) -> int:
        """Parameters, from the same op list that is costed (``tp``, ``ep``: must be 1)."""
        _check_unsharded(self.name, tp, ep)
        return self.ops(1, 224).param_count


def _check_unsharded(name: str, tp: int, ep: int) -> None:
    if tp != 1:
        raise ValueError(f"tp ({tp}) must be 1 for {name}: convolutional models are not tensor-parallel here")
    if ep != 1:
        raise ValueError(f"ep ({ep}) must be 1 for {name}: it has no experts")
