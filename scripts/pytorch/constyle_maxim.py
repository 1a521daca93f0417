#!/usr/bin/env python3
"""ConStyle MAXIM (IRConStyle) in PyTorch, for timing the official training step beside irconstyle on a GPU.

Written for this project from ../shared/spec/IRCONSTYLE.md (§4.4 ConStyle MAXIM, §4.0 U-Net primitives, §3
ConStyle, §5.1 losses); no code was copied from the official repositories. Paper size: features 32, two bottleneck
blocks, no biases (except where §4.4 lists them), block/grid 16 at H and H/2, 8 below, LayerNorm eps 1e-6 over
channels. Convolutions run on NCHW tensors and the gMLP / channel-attention parts on NHWC, with the permutes in
between, as the official code does. The ConStyle module, DC, the four losses, AdamW and the timing harness are
those of constyle_nafnet.py (same folder); the default batch is 16.

  python3 scripts/pytorch/constyle_maxim.py           # CUDA timings, one JSON line (fields as constyle_nafnet.py)
  python3 scripts/pytorch/constyle_maxim.py --check   # CPU self-check: parameter counts, one tiny step, fixture
"""
import sys

from constyle_nafnet import DC, ConStyle, Expect, check_counts, check_tiny, main, report

import torch  # noqa: E402 (constyle_nafnet exits with a JSON error line when torch is missing)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def nchw(x):
    return x.permute(0, 3, 1, 2)


class LayerNorm(nn.Module):
    """Layer_norm_process: over the last (channel) axis of an NHWC tensor, eps 1e-6, gamma / beta."""

    def __init__(self, c):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c))
        self.beta = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, 1e-6)


def block_images(x, patch):
    """[n, H, W, C] -> [n, gh*gw, ph*pw, C] (rows (gh, gw), columns (ph, pw), row-major)."""
    n, h, w, c = x.shape
    ph, pw = patch
    gh, gw = h // ph, w // pw
    return x.reshape(n, gh, ph, gw, pw, c).permute(0, 1, 3, 2, 4, 5).reshape(n, gh * gw, ph * pw, c)


def unblock_images(x, grid, patch):
    n, _, _, c = x.shape
    (gh, gw), (ph, pw) = grid, patch
    return x.reshape(n, gh, gw, ph, pw, c).permute(0, 1, 3, 2, 4, 5).reshape(n, gh * ph, gw * pw, c)


def dense_over(x, lin, axis):
    """Linear over axis 1 (the grid G) or 2 (the block P) of [n, G, P, C]."""
    t = x.transpose(axis, 3)
    return lin(t).transpose(axis, 3)


class GatingUnit(nn.Module):
    """Block/GridGatingUnit(2C, n): u * (Dense_0(LN(v)) + 1), Dense over the block (P) or grid (G) axis; bias always."""

    def __init__(self, c2, n, axis):
        super().__init__()
        self.axis = axis
        self.intermediate_layernorm = LayerNorm(c2 // 2)
        self.Dense_0 = nn.Linear(n, n, bias=True)

    def forward(self, x):
        u, v = x.chunk(2, dim=-1)
        v = dense_over(self.intermediate_layernorm(v), self.Dense_0, self.axis)
        return u * (v + 1.0)


class GmlpLayer(nn.Module):
    """GridGmlpLayer (size = grid) / BlockGmlpLayer (size = block) on NHWC x: x + out(gate(GELU(in(LN(x)))))."""

    def __init__(self, kind, size, c, bias, factor=2):
        super().__init__()
        self.kind, self.size = kind, size
        self.LayerNorm = LayerNorm(c)
        self.in_project = nn.Linear(c, c * factor, bias=bias)
        self.gate_name = "GridGatingUnit" if kind == "grid" else "BlockGatingUnit"
        setattr(self, self.gate_name, GatingUnit(c * factor, size[0] * size[1], 1 if kind == "grid" else 2))
        self.out_project = nn.Linear(c * factor // 2, c, bias=bias)

    def forward(self, x):
        _, h, w, _ = x.shape
        patch = (h // self.size[0], w // self.size[1]) if self.kind == "grid" else self.size
        grid = (h // patch[0], w // patch[1])
        y = block_images(x, patch)
        y = self.out_project(getattr(self, self.gate_name)(F.gelu(self.in_project(self.LayerNorm(y)))))
        return x + unblock_images(y, grid, patch)


class MAB(nn.Module):
    """ResidualSplitHeadMultiAxisGmlpLayer: LN -> Linear(C->2C) -> GELU -> (grid | block gMLP) -> Linear(2C->C) + x."""

    def __init__(self, block, grid, c, bias, factor=2):
        super().__init__()
        self.LayerNorm_in = LayerNorm(c)
        self.in_project = nn.Linear(c, c * factor, bias=bias)
        self.GridGmlpLayer = GmlpLayer("grid", grid, c * factor // 2, bias)
        self.BlockGmlpLayer = GmlpLayer("block", block, c * factor // 2, bias)
        self.out_project = nn.Linear(c * factor, c, bias=bias)

    def forward(self, x):
        u, v = F.gelu(self.in_project(self.LayerNorm_in(x))).chunk(2, dim=-1)
        return x + self.out_project(torch.cat([self.GridGmlpLayer(u), self.BlockGmlpLayer(v)], dim=-1))


class CALayer(nn.Module):
    """On NCHW: x * sigmoid(Conv_1(ReLU(Conv_0(mean_HW(x)))))."""

    def __init__(self, c, reduction, bias):
        super().__init__()
        self.Conv_0 = nn.Conv2d(c, c // reduction, 1, bias=bias)
        self.Conv_1 = nn.Conv2d(c // reduction, c, 1, bias=bias)

    def forward(self, x):
        s = torch.sigmoid(self.Conv_1(F.relu(self.Conv_0(x.mean(dim=(2, 3), keepdim=True)))))
        return x * s


class RCAB(nn.Module):
    """On NHWC: x + CALayer(Conv3x3(LeakyReLU(Conv3x3(LN(x)), 0.2))); the CALayer always has biases."""

    def __init__(self, c, bias):
        super().__init__()
        self.LayerNorm = LayerNorm(c)
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=bias)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=bias)
        self.channel_attention = CALayer(c, 4, True)

    def forward(self, x):
        y = nchw(self.LayerNorm(x))
        y = self.channel_attention(self.conv2(F.leaky_relu(self.conv1(y), 0.2)))
        return x + nhwc(y)


class MlpBlock(nn.Module):
    def __init__(self, c, bias):
        super().__init__()
        self.Dense_0 = nn.Linear(c, c, bias=bias)
        self.Dense_1 = nn.Linear(c, c, bias=bias)

    def forward(self, x):
        return self.Dense_1(F.gelu(self.Dense_0(x)))


class RDCAB(nn.Module):
    """On NHWC: x + CALayer(MlpBlock(LN(x)))."""

    def __init__(self, c, bias):
        super().__init__()
        self.LayerNorm = LayerNorm(c)
        self.channel_mixing = MlpBlock(c, bias)
        self.channel_attention = CALayer(c, 4, bias)

    def forward(self, x):
        return x + nhwc(self.channel_attention(nchw(self.channel_mixing(self.LayerNorm(x)))))


class SpatialGatingWeights(nn.Module):
    """GetSpatialGatingWeights(C, grid, block) on NHWC: LN -> Linear -> GELU -> (grid Dense_0 | block Dense_1) -> Linear."""

    def __init__(self, c, grid, block, bias, factor=2):
        super().__init__()
        self.grid, self.block = grid, block
        self.LayerNorm_in = LayerNorm(c)
        self.in_project = nn.Linear(c, c * factor, bias=bias)
        self.Dense_0 = nn.Linear(grid[0] * grid[1], grid[0] * grid[1], bias=bias)
        self.Dense_1 = nn.Linear(block[0] * block[1], block[0] * block[1], bias=bias)
        self.out_project = nn.Linear(c * factor, c, bias=bias)

    def forward(self, x):
        _, h, w, _ = x.shape
        u, v = F.gelu(self.in_project(self.LayerNorm_in(x))).chunk(2, dim=-1)
        gp = (h // self.grid[0], w // self.grid[1])
        u = unblock_images(dense_over(block_images(u, gp), self.Dense_0, 1), self.grid, gp)
        bg = (h // self.block[0], w // self.block[1])
        v = unblock_images(dense_over(block_images(v, self.block), self.Dense_1, 2), bg, self.block)
        return self.out_project(torch.cat([u, v], dim=-1))


class CrossGatingBlock(nn.Module):
    """x, y NCHW -> (x, y) NCHW; y optionally up-sampled by a 2x2 stride-2 transposed conv."""

    def __init__(self, x_features, c, block, grid, cin_y, upsample_y, bias):
        super().__init__()
        if upsample_y:
            self.ConvTranspose_0 = nn.ConvTranspose2d(cin_y, c, 2, 2, bias=bias)
        self.upsample_y = upsample_y
        self.Conv_0 = nn.Conv2d(x_features, c, 1, bias=bias)
        self.Conv_1 = nn.Conv2d(c, c, 1, bias=bias)
        self.LayerNorm_x = LayerNorm(c)
        self.in_project_x = nn.Linear(c, c, bias=bias)
        self.SplitHeadMultiAxisGating_x = SpatialGatingWeights(c, grid, block, bias)
        self.LayerNorm_y = LayerNorm(c)
        self.in_project_y = nn.Linear(c, c, bias=bias)
        self.SplitHeadMultiAxisGating_y = SpatialGatingWeights(c, grid, block, bias)
        self.out_project_y = nn.Linear(c, c, bias=bias)
        self.out_project_x = nn.Linear(c, c, bias=bias)

    def forward(self, x, y):
        if self.upsample_y:
            y = self.ConvTranspose_0(y)
        sx = nhwc(self.Conv_0(x))
        sy = nhwc(self.Conv_1(y))
        x = F.gelu(self.in_project_x(self.LayerNorm_x(sx)))
        gx = self.SplitHeadMultiAxisGating_x(x)
        y = F.gelu(self.in_project_y(self.LayerNorm_y(sy)))
        gy = self.SplitHeadMultiAxisGating_y(y)
        y = self.out_project_y(y * gx) + sy
        x = self.out_project_x(x * gy) + y + sx
        return nchw(x), nchw(y)


class UNetEncoderBlock(nn.Module):
    """[cat skip] -> Conv_0 1x1 -> (MAB -> RCAB) x 2 -> + shortcut; owns the never-executed cross_gating_block."""

    def __init__(self, cin, c, block, grid, bias=False):
        super().__init__()
        self.Conv_0 = nn.Conv2d(cin, c, 1, bias=bias)
        self.SplitHeadMultiAxisGmlpLayer_0 = MAB(block, grid, c, bias)
        self.SplitHeadMultiAxisGmlpLayer_1 = MAB(block, grid, c, bias)
        self.channel_attention_block_10 = RCAB(c, bias)
        self.channel_attention_block_11 = RCAB(c, bias)
        self.cross_gating_block = CrossGatingBlock(c, c, block, grid, 0, False, bias)

    def forward(self, x, skip=None):
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        s = nhwc(self.Conv_0(x))
        y = self.channel_attention_block_10(self.SplitHeadMultiAxisGmlpLayer_0(s))
        y = self.channel_attention_block_11(self.SplitHeadMultiAxisGmlpLayer_1(y))
        return nchw(y + s)


class UNetDecoderBlock(nn.Module):
    """ConStyle MAXIM's decoder block: one UNetEncoderBlock on concat(x, bridge)."""

    def __init__(self, cin, c, block, grid):
        super().__init__()
        self.UNetEncoderBlock_0 = UNetEncoderBlock(cin, c, block, grid)

    def forward(self, x, bridge):
        return self.UNetEncoderBlock_0(x, bridge)


class BottleneckBlock(nn.Module):
    """input_proj 1x1 (always with bias) -> (MAB -> RDCAB) x 2 -> + shortcut."""

    def __init__(self, c, block, grid, bias=False):
        super().__init__()
        self.input_proj = nn.Conv2d(c, c, 1, bias=True)
        self.SplitHeadMultiAxisGmlpLayer_0 = MAB(block, grid, c, bias)
        self.SplitHeadMultiAxisGmlpLayer_1 = MAB(block, grid, c, bias)
        self.channel_attention_block_1_0 = RDCAB(c, bias)
        self.channel_attention_block_1_1 = RDCAB(c, bias)

    def forward(self, x):
        s = nhwc(self.input_proj(x))
        y = self.channel_attention_block_1_0(self.SplitHeadMultiAxisGmlpLayer_0(s))
        y = self.channel_attention_block_1_1(self.SplitHeadMultiAxisGmlpLayer_1(y))
        return nchw(y + s)


def resize(x, r):
    """UpSampleRatio_(r): antialiased bilinear resize to (int(H r), int(W r)); identity at r = 1."""
    if r == 1:
        return x
    h, w = x.shape[2:]
    return F.interpolate(x, size=(int(h * r), int(w * r)), mode="bilinear", align_corners=False, antialias=True)


class UpSampleRatio(nn.Module):
    def __init__(self, cin, cout, r):
        super().__init__()
        self.r = r
        self.Conv_0 = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.Conv_0(resize(x, self.r))


class UC(nn.Module):
    """The MAXIM variant of UC(n): Conv3x3(n -> 4n, no bias) + PixelShuffle(2)."""

    def __init__(self, n):
        super().__init__()
        self.up = nn.Sequential(nn.Conv2d(n, 4 * n, 3, 1, 1, bias=False), nn.PixelShuffle(2))

    def forward(self, x):
        return self.up(x)


def affine(cin, f):
    return nn.Sequential(nn.Conv2d(cin, f, 1, bias=False), nn.LeakyReLU(0.1, inplace=True))


class ConStyleMaxim(nn.Module):
    def __init__(self, features=32, bottom=2, block_hr=(16, 16), block_lr=(8, 8), grid_hr=(16, 16), grid_lr=(8, 8),
                 K=65760, train=True):
        super().__init__()
        f = features
        # (block, grid) per level H, H/2, H/4, H/8; H/4 uses block_lr as its grid (as the official code)
        L = [(block_hr, grid_hr), (block_hr, grid_hr), (block_lr, block_lr), (block_lr, grid_lr)]
        self.ConStyle = ConStyle(K=K, train=train)
        for i in range(3):
            setattr(self, f"stage_input_conv_{i}", nn.Conv2d(3, f, 3, 1, 1, bias=False))
        self.Process_Module_l1 = UNetEncoderBlock(2 * f, f, *L[0])
        self.DC1 = DC(f)
        self.Process_Module_l2 = UNetEncoderBlock(3 * f, 2 * f, *L[1])
        self.DC2 = DC(2 * f)
        self.Process_Module_l3 = UNetEncoderBlock(4 * f, 3 * f, *L[2])
        self.DC3 = DC(3 * f)
        self.Process_Module_bottom = nn.Sequential(*[BottleneckBlock(4 * f, *L[3]) for _ in range(bottom)])
        self.local_fusion = nn.Conv2d(8 * f, 3 * f, 1, bias=False)
        for k, lvl in ((0, 2), (1, 1), (2, 0)):
            setattr(self, f"UpSampleRatio_{3 * k + 1}", UpSampleRatio(2 * f, f, 2.0 ** (1 - lvl)))
            setattr(self, f"UpSampleRatio_{3 * k + 2}", UpSampleRatio(3 * f, f, 2.0 ** (2 - lvl)))
            setattr(self, f"cross_gating_block_{lvl}",
                    CrossGatingBlock(3 * f, f, L[lvl][0], L[lvl][1], 3 * f if lvl == 2 else f, True, False))
        self.UC3 = UC(3 * f)
        self.Process_Module_r3 = UNetDecoderBlock(6 * f, 3 * f, *L[2])
        self.UC2 = UC(3 * f)
        self.Process_Module_r2 = UNetDecoderBlock(6 * f, 2 * f, *L[1])
        self.UC1 = UC(2 * f)
        self.Process_Module_r1 = UNetDecoderBlock(5 * f, 2 * f, *L[0])
        self.mlp = nn.Sequential(nn.Linear(128, 4 * f))
        self.AffineTransform0 = affine(32, f)
        self.AffineTransform1 = affine(64, f)
        self.AffineTransform2 = affine(128, f)
        self.Finetune_Module = nn.Sequential(nn.Conv2d(2 * f, 3, 3, 1, 1, bias=False))

    def restore(self, img, code, feas):
        qm = self.mlp(code).view(code.shape[0], -1, 1, 1)
        f0, f1, f2 = self.AffineTransform0(feas[0]), self.AffineTransform1(feas[1]), self.AffineTransform2(feas[2])
        s0 = self.stage_input_conv_0(img)
        s1 = self.stage_input_conv_1(img[:, :, 1::2, 1::2])  # nearest_downsample(x, 1/2): rows 2i + 1
        s2 = self.stage_input_conv_2(img[:, :, 2::4, 2::4])  # nearest_downsample(x, 1/4): rows 4i + 2
        e1 = self.Process_Module_l1(s0, s0)  # the first block concatenates s0 with itself
        e2 = self.Process_Module_l2(self.DC1(e1, f0), s1)
        e3 = self.Process_Module_l3(self.DC2(e2, f1), s2)
        b = self.Process_Module_bottom(self.DC3(e3, f2))
        x = self.local_fusion(torch.cat([b, b * qm], dim=1))
        glob, skips = x, {}
        for k, lvl in ((0, 2), (1, 1), (2, 0)):
            u2, u3 = getattr(self, f"UpSampleRatio_{3 * k + 1}"), getattr(self, f"UpSampleRatio_{3 * k + 2}")
            signal = torch.cat([resize(e1, 2.0 ** -lvl), u2(e2), u3(e3)], dim=1)
            skips[lvl], glob = getattr(self, f"cross_gating_block_{lvl}")(signal, glob)

        def bridge(lvl):
            return torch.cat([resize(skips[j], 2.0 ** (j - lvl)) for j in (2, 1, 0)], dim=1)

        x = self.Process_Module_r3(self.UC3(x), bridge(2))
        x = self.Process_Module_r2(self.UC2(x), bridge(1))
        x = self.Process_Module_r1(self.UC1(x), bridge(0))
        return self.Finetune_Module(x) + img

    def forward(self, lq):
        q, feas = self.ConStyle.encoder_q(lq)
        return self.restore(lq, q[1], feas)


def check():
    """CPU self-check: the §4.8 parameter counts, one tiny training step, and the golden fixture."""
    torch.manual_seed(0)
    expect = Expect()
    check_counts(expect, ConStyleMaxim(K=16), 9292496, 8101664, 6910832)
    tiny = dict(features=8, bottom=1, block_hr=(4, 4), block_lr=(2, 2), grid_hr=(4, 4), grid_lr=(2, 2))
    losses = check_tiny(expect, ConStyleMaxim(**tiny, K=16).train(), (32, 64), "constyle_maxim.safetensors",
                        lambda c: ConStyleMaxim(features=c["features"], bottom=c["bottom"], block_hr=tuple(c["block_hr"]),
                                                block_lr=tuple(c["block_lr"]), grid_hr=tuple(c["grid_hr"]),
                                                grid_lr=tuple(c["grid_lr"]), K=16))
    return report(expect, losses)


if __name__ == "__main__":
    sys.exit(main(__doc__, lambda K: ConStyleMaxim(K=K), check, batch=16))
