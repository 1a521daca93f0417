#!/usr/bin/env python3
"""ConStyle Restormer (IRConStyle) in PyTorch, for timing the official training step beside irconstyle on a GPU.

Written for this project from ../shared/spec/IRCONSTYLE.md (§4.3 ConStyle Restormer, §4.0 U-Net primitives, §3
ConStyle, §5.1 losses); no code was copied from the official repositories. Paper size: dim 48, blocks 4/6/6, 8,
4/6/6, 4 refinement blocks, heads 1/2/4/8, GDFN expansion 2.66, no biases, WithBias LayerNorm (eps 1e-5), PReLU in
the AffineTransforms. The ConStyle module, the U-Net's DC/UC, the four losses, AdamW and the timing harness are
those of constyle_nafnet.py (same folder); the default batch is 8, as the official Restormer configs train.

  python3 scripts/pytorch/constyle_restormer.py           # CUDA timings, one JSON line (fields as constyle_nafnet.py)
  python3 scripts/pytorch/constyle_restormer.py --check   # CPU self-check: parameter counts, one tiny step, fixture
"""
import sys

from constyle_nafnet import ConStyleUNet, Expect, check_counts, check_tiny, main, report

import torch  # noqa: E402 (constyle_nafnet exits with a JSON error line when torch is missing)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


class WithBiasLayerNorm(nn.Module):
    """LayerNorm over the channels of every pixel, as Restormer computes it (to (B, HW, C), normalise, back)."""

    def __init__(self, c):
        super().__init__()
        self.body = nn.Module()
        self.body.weight = nn.Parameter(torch.ones(c))
        self.body.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        mu = t.mean(-1, keepdim=True)
        var = t.var(-1, keepdim=True, unbiased=False)
        t = (t - mu) / torch.sqrt(var + 1e-5) * self.body.weight + self.body.bias
        return t.transpose(1, 2).reshape(b, c, h, w)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention: channel attention per head over L2-normalised q, k."""

    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(c, 3 * c, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * c, 3 * c, 3, 1, 1, groups=3 * c, bias=False)
        self.project_out = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward: hidden floor(2.66 C), GELU(x1) * x2."""

    def __init__(self, c, expansion=2.66):
        super().__init__()
        h = int(c * expansion)
        self.project_in = nn.Conv2d(c, 2 * h, 1, bias=False)
        self.dwconv = nn.Conv2d(2 * h, 2 * h, 3, 1, 1, groups=2 * h, bias=False)
        self.project_out = nn.Conv2d(h, c, 1, bias=False)

    def forward(self, x):
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.norm1 = WithBiasLayerNorm(c)
        self.attn = MDTA(c, heads)
        self.norm2 = WithBiasLayerNorm(c)
        self.ffn = GDFN(c)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 3, 1, 1, bias=False)

    def forward(self, x):
        return self.proj(x)


def blocks(n, c, heads):
    return nn.Sequential(*[TransformerBlock(c, heads) for _ in range(n)])


class ConStyleRestormer(ConStyleUNet):
    def __init__(self, dim=48, left=(4, 6, 6), bottom=8, right=(4, 6, 6), refine=4, heads=(1, 2, 4, 8), K=65760,
                 train=True):
        super().__init__(dim, left, bottom, right, lambda level, n, c: blocks(n, c, heads[level]),
                         OverlapPatchEmbed(dim),
                         nn.Sequential(*[TransformerBlock(2 * dim, heads[0]) for _ in range(refine)],
                                       nn.Conv2d(2 * dim, 3, 3, 1, 1, bias=False)),
                         nn.PReLU, K, train)


def check():
    """CPU self-check: the §4.8 parameter counts, one tiny training step, and the golden fixture."""
    torch.manual_seed(0)
    expect = Expect()
    check_counts(expect, ConStyleRestormer(K=16), 16765792, 15574960, 14384128)
    net = ConStyleRestormer(dim=8, left=(1, 1, 1), bottom=1, right=(1, 1, 1), refine=1, K=16).train()
    losses = check_tiny(expect, net, (32, 48), "constyle_restormer.safetensors", lambda c: ConStyleRestormer(
        dim=c["dim"], left=tuple(c["left"]), bottom=c["bottom"], right=tuple(c["right"]), refine=c["refine"],
        heads=tuple(c["heads"]), K=16))
    return report(expect, losses)


if __name__ == "__main__":
    sys.exit(main(__doc__, lambda K: ConStyleRestormer(K=K), check, batch=8))
