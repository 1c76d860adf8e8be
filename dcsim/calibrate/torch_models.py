"""PyTorch modules built from dcsim's own model configs, layer for layer as :mod:`dcsim.models` lists
them, for the end-to-end check (torchvision and transformers are not used: the point is that dcsim's
op list and the real network compute the same thing)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcsim.models import ResNetConfig, TransformerConfig


class _Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d, self.heads, self.post_norm = cfg.hidden, cfg.heads, cfg.family == "encoder"
        self.causal = cfg.family == "decoder"
        norm = nn.LayerNorm if cfg.norm == "layernorm" else nn.RMSNorm
        self.norm1, self.norm2 = norm(d), norm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=cfg.bias)
        self.proj = nn.Linear(d, d, bias=cfg.bias)
        self.up = nn.Linear(d, cfg.ffn_hidden, bias=cfg.bias)
        self.down = nn.Linear(cfg.ffn_hidden, d, bias=cfg.bias)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(y.transpose(1, 2).reshape(b, s, d))

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = self.norm1(x + self._attention(x))
            return self.norm2(x + self._mlp(x))
        x = x + self._attention(self.norm1(x))
        return x + self._mlp(self.norm2(x))


class TorchTransformer(nn.Module):
    """A GPT-2-style decoder or BERT-style encoder (learned positions, LayerNorm, GELU MLP)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.activation != "gelu" or cfg.kv_heads not in (None, cfg.heads) or cfg.positional != "learned":
            raise ValueError("the torch reference models cover GELU, MHA, learned positions only")
        d = cfg.hidden
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab, d)
        self.positions = nn.Embedding(cfg.max_seq_len, d)
        self.types = nn.Embedding(cfg.token_types, d) if cfg.token_types else None
        norm = nn.LayerNorm if cfg.norm == "layernorm" else nn.RMSNorm
        self.embed_norm = norm(d) if cfg.family == "encoder" else None
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.layers))
        self.head_dense = nn.Linear(d, d, bias=cfg.bias) if cfg.family == "encoder" else None
        self.head_norm = norm(d)
        self.logits = nn.Linear(d, cfg.vocab, bias=cfg.bias and cfg.family == "encoder")
        if cfg.tied_embeddings:
            self.logits.weight = self.tokens.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (batch, seq, vocab) for token ids (batch, seq)."""
        seq = ids.shape[1]
        x = self.tokens(ids) + self.positions(torch.arange(seq, device=ids.device))
        if self.types is not None:
            x = x + self.types(torch.zeros_like(ids))
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        for block in self.blocks:
            x = block(x)
        if self.head_dense is not None:
            x = F.gelu(self.head_dense(x))
        return self.logits(self.head_norm(x))


class _Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class TorchResNet(nn.Module):
    """A bottleneck ResNet (v1.5) matching :class:`dcsim.models.ResNetConfig`."""

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.stem = nn.Conv2d(cfg.in_channels, cfg.stem_channels, 7, 2, 3, bias=False)
        self.stem_bn = nn.BatchNorm2d(cfg.stem_channels)
        blocks: list[nn.Module] = []
        channels = cfg.stem_channels
        for stage, (count, width) in enumerate(zip(cfg.blocks, cfg.widths, strict=True)):
            for index in range(count):
                stride = 2 if index == 0 and stage > 0 else 1
                blocks.append(_Bottleneck(channels, width, width * cfg.expansion, stride))
                channels = width * cfg.expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, classes) for images (batch, channels, height, width)."""
        x = F.max_pool2d(F.relu(self.stem_bn(self.stem(x))), 3, 2, 1)
        x = self.blocks(x)
        x = F.avg_pool2d(x, x.shape[-1])
        return self.fc(x.flatten(1))


def build_torch_model(cfg: TransformerConfig | ResNetConfig) -> nn.Module:
    """The torch module for a dcsim model config (training mode, so BatchNorm uses batch statistics)."""
    model = TorchResNet(cfg) if isinstance(cfg, ResNetConfig) else TorchTransformer(cfg)
    return model.train()


def example_inputs(
    cfg: TransformerConfig | ResNetConfig, batch: int, size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, integer targets) for one step: token ids of ``size`` tokens or ``size``-pixel images."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    if isinstance(cfg, ResNetConfig):
        images = torch.randn(batch, cfg.in_channels, size, size, generator=generator)
        labels = torch.randint(0, cfg.num_classes, (batch,), generator=generator)
        return images.to(device), labels.to(device)
    ids = torch.randint(0, cfg.vocab, (batch, size), generator=generator)
    return ids.to(device), torch.randint(0, cfg.vocab, (batch * size,), generator=generator).to(device)
