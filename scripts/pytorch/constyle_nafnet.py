#!/usr/bin/env python3
"""ConStyle NAFNet (IRConStyle) in PyTorch, for timing the official training step beside irconstyle on a GPU.

Written for this project from ../shared/spec/IRCONSTYLE.md (§3 ConStyle, §4.0 shared U-Net primitives, §4.2
ConStyle NAFNet, §5.1 losses, §5.4 AdamW); no code was copied from the official repository. Paper size: dim 48,
blocks 7/8/9, 9, 7/8/9; ConStyle MoCo with encoder_q / encoder_k (momentum 0.999, updated before the key
forward), queue 128 x 65,760 (N(0,1), not normalised), T = 0.07, enqueue of the query codes and the two returned
queue slices; L = L1 + CE + content + style (style negative, Gram = X X^T / (128 N)); AdamW lr 3e-4, wd 1e-4.

  python3 scripts/pytorch/constyle_nafnet.py           # CUDA timings, prints one JSON line (see README.md)
  python3 scripts/pytorch/constyle_nafnet.py --check   # CPU self-check: parameter counts, one tiny step, grads
"""
import argparse
import json
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:  # the project's dev machines have no PyTorch; the GPU machine has 2.11
    print(json.dumps({"error": f"PyTorch is not importable here ({e}); run this on the GPU machine "
                               "(PyTorch 2.11 cu130) or install torch"}))
    print(f"constyle_nafnet.py: PyTorch is not importable ({e}). This script needs torch; on the project's GPU "
          "machine it is installed. Nothing was checked.", file=sys.stderr)
    sys.exit(2)

MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------------- ConStyle (§3)
def conv_act(cin, cout, stride=1):
    """Conv3x3 without bias + LeakyReLU(0.1) in place (the encoder's ConvAct)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.LeakyReLU(0.1, inplace=True))


def linear_bn_gelu(cin, cout):
    return nn.Sequential(nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.GELU())


class Encoder(nn.Module):
    """MyBaseEncoder: four conv stages (stride 2 at the end of each), global average pool, two Linear-BN-GELU."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(conv_act(3, 16), conv_act(16, 16), conv_act(16, 32, 2))
        self.stage2 = nn.Sequential(conv_act(32, 32), conv_act(32, 64, 2))
        self.stage3 = nn.Sequential(conv_act(64, 128), conv_act(128, 128, 2))
        self.stage4 = nn.Sequential(conv_act(128, 256), conv_act(256, 256, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mlp1 = linear_bn_gelu(256, 128)
        self.mlp2 = linear_bn_gelu(128, 128)

    def forward(self, x):
        f1 = self.stage1(x)
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        v = self.pool(self.stage4(f3)).flatten(1)
        o1 = self.mlp1(v)
        o2 = self.mlp2(o1)
        return [o1, o2], [f1, f2, f3]


class ConStyle(nn.Module):
    def __init__(self, dim=128, K=65760, m=0.999, T=0.07, train=True):
        super().__init__()
        self.K, self.m, self.T = K, m, T
        self.encoder_q = Encoder()
        if train:
            self.encoder_k = Encoder()
            for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
                pk.data.copy_(pq.data)
                pk.requires_grad = False
            self.register_buffer("queue", torch.randn(dim, K))
            self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self):
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.data.mul_(self.m).add_(pq.data, alpha=1.0 - self.m)

    @torch.no_grad()
    def swap_queue(self, codes):
        """Writes the query codes over the oldest slice; returns [next-oldest slice^T, oldest slice^T] (copies)."""
        n = codes.shape[0]
        assert self.K % n == 0, f"K = {self.K} must be divisible by the batch size {n}"
        p = int(self.queue_ptr)
        oldest = self.queue[:, p:p + n].clone()
        p2 = (p + n) % self.K
        nxt = self.queue[:, p2:p2 + n].clone()
        self.queue[:, p:p + n] = codes.t()
        self.queue_ptr[0] = p2
        return [nxt.t(), oldest.t()]

    def train_forward(self, im_q, im_k):
        q, feas = self.encoder_q(im_q)
        with torch.no_grad():
            self.momentum_update()  # before the key forward, every training step
            k = self.encoder_k(im_k)[0][1]
        l_pos = (q[1] * k).sum(dim=1, keepdim=True)
        l_neg = q[1] @ self.queue.clone().detach()  # the queue before this step's enqueue
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        neg = self.swap_queue(q[1].detach())
        return q, k, neg, logits, labels, feas


# ------------------------------------------------------------------------------------------- NAFNet parts (§4.2)
class LayerNorm2dFn(torch.autograd.Function):
    """Per-pixel LayerNorm over channels (NCHW) with a hand-written backward, as NAFNet's LayerNorm2d has."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + eps).sqrt()
        ctx.eps = eps
        ctx.save_for_backward(y, var, weight)
        return weight.view(1, -1, 1, 1) * y + bias.view(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, gy):
        y, var, weight = ctx.saved_tensors
        g = gy * weight.view(1, -1, 1, 1)
        mean_g = g.mean(dim=1, keepdim=True)
        mean_gy = (g * y).mean(dim=1, keepdim=True)
        gx = (g - y * mean_gy - mean_g) / (var + ctx.eps).sqrt()
        gw = (gy * y).sum(dim=3).sum(dim=2).sum(dim=0)
        gb = gy.sum(dim=3).sum(dim=2).sum(dim=0)
        return gx, gw, gb, None


class LayerNorm2d(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        return LayerNorm2dFn.apply(x, self.weight, self.bias, self.eps)


def simple_gate(x):
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        dw = 2 * c
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp):
        x = simple_gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(simple_gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class DC(nn.Module):
    """Conv3x3(n -> n/4, no bias) + PixelUnshuffle(2), then concat with the transformed ConStyle map."""

    def __init__(self, n):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(n, n // 4, 3, 1, 1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x, fea):
        return torch.cat([self.down(x), fea], dim=1)


class UC(nn.Module):
    """Conv3x3(n -> 4n, no bias) + PixelShuffle(2), concat the skip, Conv1x1(a -> b, no bias)."""

    def __init__(self, n, a, b):
        super().__init__()
        self.up = nn.Sequential(nn.Conv2d(n, 4 * n, 3, 1, 1, bias=False), nn.PixelShuffle(2))
        self.down = nn.Conv2d(a, b, 1, bias=False)

    def forward(self, x, skip):
        return self.down(torch.cat([self.up(x), skip], dim=1))


def blocks(n, c):
    return nn.Sequential(*[NAFBlock(c) for _ in range(n)])


class ConStyleUNet(nn.Module):
    """The ConStyle U-Net template (§4.0.7) shared by ConStyle NAFNet and ConStyle Restormer: make_blocks(level, n, c)
    builds a Process Module (level 0..3 = H .. H/8; the decoder levels reuse 2, 1, 0); `act(dim)` is the
    AffineTransforms' activation."""

    def __init__(self, dim, left, bottom, right, make_blocks, preprocess, finetune, act, K, train):
        super().__init__()
        self.ConStyle = ConStyle(K=K, train=train)
        self.Preprocess_Module = preprocess
        self.Process_Module_l1 = make_blocks(0, left[0], dim)
        self.DC1 = DC(dim)
        self.Process_Module_l2 = make_blocks(1, left[1], 2 * dim)
        self.DC2 = DC(2 * dim)
        self.Process_Module_l3 = make_blocks(2, left[2], 3 * dim)
        self.DC3 = DC(3 * dim)
        self.Process_Module_bottom = make_blocks(3, bottom, 4 * dim)
        self.mlp = nn.Sequential(nn.Linear(128, 4 * dim))
        self.local_fusion = nn.Conv2d(8 * dim, 3 * dim, 1, bias=False)
        self.UC3 = UC(3 * dim, 6 * dim, 4 * dim)
        self.Process_Module_r3 = make_blocks(2, right[2], 4 * dim)
        self.UC2 = UC(4 * dim, 6 * dim, 3 * dim)
        self.Process_Module_r2 = make_blocks(1, right[1], 3 * dim)
        self.UC1 = UC(3 * dim, 4 * dim, 2 * dim)
        self.Process_Module_r1 = make_blocks(0, right[0], 2 * dim)
        self.Finetune_Module = finetune
        for i, cin in enumerate((32, 64, 128)):
            setattr(self, f"AffineTransform{i}", nn.Sequential(nn.Conv2d(cin, dim, 1, bias=False), act(dim)))

    def restore(self, img, code, feas):
        e1 = self.Process_Module_l1(self.Preprocess_Module(img))
        e2 = self.Process_Module_l2(self.DC1(e1, self.AffineTransform0(feas[0])))
        e3 = self.Process_Module_l3(self.DC2(e2, self.AffineTransform1(feas[1])))
        b = self.Process_Module_bottom(self.DC3(e3, self.AffineTransform2(feas[2])))
        qm = self.mlp(code).view(code.shape[0], -1, 1, 1)
        z = self.local_fusion(torch.cat([b, b * qm], dim=1))
        d3 = self.Process_Module_r3(self.UC3(z, e3))
        d2 = self.Process_Module_r2(self.UC2(d3, e2))
        d1 = self.Process_Module_r1(self.UC1(d2, e1))
        return self.Finetune_Module(d1) + img

    def forward(self, lq):
        """Inference: the query encoder's code and maps, then the restoration network."""
        q, feas = self.ConStyle.encoder_q(lq)
        return self.restore(lq, q[1], feas)


class ConStyleNAFNet(ConStyleUNet):
    def __init__(self, dim=48, left=(7, 8, 9), bottom=9, right=(7, 8, 9), K=65760, train=True):
        super().__init__(dim, left, bottom, right, lambda level, n, c: blocks(n, c),
                         nn.Sequential(nn.Conv2d(3, dim, 3, 1, 1, bias=False)),
                         nn.Sequential(nn.Conv2d(2 * dim, 3, 3, 1, 1, bias=False)),
                         lambda d: nn.LeakyReLU(0.1, inplace=True), K, train)


# -------------------------------------------------------------------------------------------------- losses (§5.1)
def gram(x):
    n, d = x.shape
    return (x @ x.t()) / (n * d)


def train_step(net, opt, lq, gt):
    """One official iteration while ConStyle trains: MoCo forward, restoration, four losses, backward, AdamW."""
    opt.zero_grad()
    q, k, neg, logits, labels, feas = net.ConStyle.train_forward(lq, gt)
    out = net.restore(lq, q[1], feas)
    l_pix = F.l1_loss(out, gt)
    l_ce = F.cross_entropy(logits, labels)
    l_content = F.mse_loss(q[1], k)
    l_style = -F.mse_loss(gram(q[0]), gram(neg[0])) - F.mse_loss(gram(q[1]), gram(neg[1]))
    total = l_pix + l_ce + l_content + l_style
    total.backward()
    opt.step()
    return {"pix": l_pix, "ce": l_ce, "content": l_content, "style": l_style, "total": total}


def make_optimizer(net):
    # every parameter with requires_grad at construction: restoration net + encoder_q (encoder_k excluded)
    return torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=3e-4, betas=(0.9, 0.999),
                             eps=1e-8, weight_decay=1e-4)


def count(module, pred=lambda n: True):
    return sum(p.numel() for n, p in module.named_parameters() if pred(n))


# -------------------------------------------------------------------------------------------------- GPU timing
def timed(fn, warmup, reps):
    ts = []
    for i in range(warmup + reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        if i >= warmup:
            ts.append((time.perf_counter() - t0) * 1000.0)
    return ts


def bench(a, make_net=None):
    """GPU timings of make_net(K) (default: paper-size ConStyle NAFNet); prints one JSON line."""
    make_net = make_net or (lambda K: ConStyleNAFNet(K=K))
    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch.cuda.is_available() is False"}))
        return 2
    dev = torch.device("cuda")
    # PyTorch's defaults, stated: TF32 for cuDNN convolutions, not for matmul
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = bool(a.cudnn_benchmark)
    torch.manual_seed(0)
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
           "batch": a.batch, "size": a.size, "K": a.K, "cudnn_benchmark": bool(a.cudnn_benchmark),
           "tf32": {"cudnn": True, "matmul": False}}
    net = make_net(a.K).to(dev).train()
    res["model"] = type(net).__name__
    res["params_training"] = count(net)
    res["params_inference"] = count(net, lambda n: ".encoder_k." not in n)
    opt = make_optimizer(net)
    gt = torch.rand(a.batch, 3, a.size, a.size, device=dev)
    lq = gt + 0.1 * torch.randn_like(gt)
    losses = {}

    def step():
        out = train_step(net, opt, lq, gt)
        losses.update({k: float(v) for k, v in out.items()})  # the training loop reads its losses every step

    torch.cuda.reset_peak_memory_stats()
    ts = timed(step, a.warmup, a.steps)
    res["train_ms_per_step"] = statistics.median(ts)
    res["train_img_per_s"] = a.batch * 1000.0 / res["train_ms_per_step"]
    res["train_ms_all"] = [round(t, 2) for t in ts]
    res["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
    res["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / MIB
    res["losses"] = losses
    opt = lq = gt = None  # free the training state before timing inference
    net.eval()
    torch.cuda.empty_cache()
    for s in a.infer:
        x = torch.rand(1, 3, s, s, device=dev)
        with torch.no_grad():
            ti = timed(lambda: net(x), a.warmup, a.infer_reps)
        res[f"infer_{s}_ms"] = statistics.median(ti)
    print(json.dumps(res))
    return 0


# -------------------------------------------------------------------------------------------------- CPU check
class Expect:
    """Named checks for the CPU self-checks: prints each, remembers whether all held."""

    def __init__(self):
        self.ok = True

    def __call__(self, name, got, want):
        good = got == want
        self.ok &= good
        print(f"  {'ok ' if good else 'BAD'} {name}: {got} (expected {want})", file=sys.stderr)
        return good


def check_counts(expect, paper, training, inference, restoration):
    """The §4.8 parameter counts of a paper-size network (Train=True, Train=False, restoration alone)."""
    expect("parameters, Train=True", count(paper), training)
    expect("parameters, Train=False", count(paper, lambda n: ".encoder_k." not in n), inference)
    expect("restoration", count(paper, lambda n: not n.startswith("ConStyle.")), restoration)


def check_tiny(expect, net, infer_hw, fixture, build):
    """One training step of a tiny network (finite losses, no gradient on encoder_k), any-size inference, and the
    golden fixture (build(config) makes the network); returns the step's losses."""
    opt = make_optimizer(net)
    gt = torch.rand(4, 3, 32, 32)
    lq = gt + 0.1 * torch.randn_like(gt)
    losses = train_step(net, opt, lq, gt)
    expect("losses finite", all(torch.isfinite(v).item() for v in losses.values()), True)
    expect("encoder_k has no grad", all(p.grad is None for p in net.ConStyle.encoder_k.parameters()), True)
    net.eval()
    with torch.no_grad():
        expect("inference shape", list(net(torch.rand(1, 3, *infer_hw)).shape), [1, 3, *infer_hw])
    fixture_parity(expect, fixture, build)
    return losses


def report(expect, losses):
    print(json.dumps({"check": "ok" if expect.ok else "FAILED", "losses": {k: v.item() for k, v in losses.items()}}))
    return 0 if expect.ok else 1


def check():
    torch.manual_seed(0)
    expect = Expect()
    paper = ConStyleNAFNet(K=16)
    check_counts(expect, paper, 13930704, 12739872, 11549040)
    expect("one encoder", count(paper.ConStyle.encoder_q), 1190832)
    del paper

    # hand-written LayerNorm2d backward against finite differences (float64)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    expect("LayerNorm2d gradcheck", torch.autograd.gradcheck(lambda x, w, b: LayerNorm2dFn.apply(x, w, b, 1e-6), (x, w, b)), True)

    # a tiny configuration: shapes, one training step, queue bookkeeping, momentum update
    net = ConStyleNAFNet(dim=8, left=(1, 1, 1), bottom=1, right=(1, 1, 1), K=16).train()
    opt = make_optimizer(net)
    expect("optimizer parameters", sum(p.numel() for g in opt.param_groups for p in g["params"]),
           count(net, lambda n: ".encoder_k." not in n))
    gt = torch.rand(4, 3, 32, 32)
    lq = gt + 0.1 * torch.randn_like(gt)
    q0 = net.ConStyle.queue.clone()
    wk = next(net.ConStyle.encoder_k.parameters()).detach().clone()
    q, k, neg, logits, labels, feas = net.ConStyle.train_forward(lq, gt)
    expect("logits shape", list(logits.shape), [4, 17])
    expect("feature shapes", [list(f.shape) for f in feas], [[4, 32, 16, 16], [4, 64, 8, 8], [4, 128, 4, 4]])
    expect("neg[0] = next-oldest slice", bool(torch.equal(neg[0], q0[:, 4:8].t())), True)
    expect("neg[1] = oldest slice", bool(torch.equal(neg[1], q0[:, 0:4].t())), True)
    expect("enqueued query codes", bool(torch.equal(net.ConStyle.queue[:, 0:4], q[1].detach().t())), True)
    expect("queue_ptr", int(net.ConStyle.queue_ptr), 4)
    pos = (logits[:, 0] * 0.07 - (q[1] * k).sum(1)).abs().max().item()
    expect("positive logit = <q2, k2>/T", pos < 1e-5, True)
    expect("restored shape", list(net.restore(lq, q[1], feas).shape), [4, 3, 32, 32])
    del q, k, neg, logits, labels, feas
    wq = next(net.ConStyle.encoder_q.parameters()).detach().clone()
    losses = train_step(net, opt, lq, gt)
    wk2 = next(net.ConStyle.encoder_k.parameters()).detach()
    # two momentum updates so far (train_forward above, then train_step), both before encoder_q changed
    want = 0.999 * (0.999 * wk + 0.001 * wq) + 0.001 * wq
    expect("momentum update 0.999 (before the key forward)", bool(torch.allclose(wk2, want, atol=1e-7)), True)
    expect("losses finite", all(torch.isfinite(v).item() for v in losses.values()), True)
    expect("style loss <= 0", losses["style"].item() <= 0, True)
    expect("encoder_k has no grad", all(p.grad is None for p in net.ConStyle.encoder_k.parameters()), True)
    expect("encoder_q has grad", all(p.grad is not None for p in net.ConStyle.encoder_q.parameters()), True)
    net.eval()
    with torch.no_grad():
        expect("inference shape", list(net(torch.rand(1, 3, 24, 40)).shape), [1, 3, 24, 40])
    fixture_parity(expect)
    return report(expect, losses)


def read_safetensors(path):
    import struct
    with open(path, "rb") as fh:
        raw = fh.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    out = {}
    for k, v in head.items():
        a, b = v["data_offsets"]
        dt = {"F32": torch.float32, "I32": torch.int32, "I64": torch.int64, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}[v["dtype"]]
        out[k] = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=dt).reshape(v["shape"]).float() if b > a else torch.zeros(v["shape"])
    return meta, out


def fixture_parity(expect, fixture="constyle_nafnet.safetensors", build=None):
    """The restoration network against the golden fixture made by the official code (test/fixtures): build(cfg)
    makes the network from the fixture's constructor config (default: ConStyle NAFNet)."""
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", fixture)
    if not os.path.exists(path):
        print(f"  --  fixture parity skipped: {path} not found", file=sys.stderr)
        return True
    meta, t = read_safetensors(path)
    cfg = json.loads(meta["config"])["config"]
    build = build or (lambda c: ConStyleNAFNet(dim=c["dim"], left=tuple(c["left"]), bottom=c["bottom"],
                                               right=tuple(c["right"]), K=16))
    net = build(cfg)
    sd = {k[len("param."):]: v for k, v in t.items() if k.startswith("param.")}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    good = expect("fixture names: unexpected", unexpected, []) & expect(
        "fixture names: missing outside ConStyle", [m for m in missing if not m.startswith("ConStyle.")], [])
    net.train()
    feas = [t["input.fea0"], t["input.fea1"], t["input.fea2"]]
    out = net.restore(t["input.lq"], t["input.q1"], feas)
    loss = F.l1_loss(out, t["input.gt"])
    loss.backward()
    rel = lambda a, b: ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12)).item()
    e_out = rel(out.detach(), t["out.restored"])
    e_grad = max(rel(p.grad, t["grad." + n]) for n, p in net.named_parameters() if p.grad is not None and t.get("grad." + n) is not None and t["grad." + n].shape == p.grad.shape)
    good &= expect("fixture out.restored rel err < 1e-5", e_out < 1e-5, True)
    good &= expect("fixture loss.l1 rel err < 1e-5", rel(loss.detach().reshape(1), t["loss.l1"].reshape(1)) < 1e-5, True)
    good &= expect(f"fixture grads worst rel err {e_grad:.2e} < 1e-4", e_grad < 1e-4, True)
    return good


def main(doc=__doc__, make_net=None, check_fn=None, batch=16):
    """Command line shared by the reference scripts (constyle_restormer.py passes its network and check)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="CPU self-check instead of GPU timings")
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--K", type=int, default=65760)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--infer", type=int, nargs="*", default=[256, 512])
    ap.add_argument("--infer-reps", type=int, default=20)
    ap.add_argument("--cudnn-benchmark", type=int, default=1, help="torch.backends.cudnn.benchmark (BasicSR sets 1)")
    a = ap.parse_args()
    return (check_fn or check)() if a.check else bench(a, make_net)


if __name__ == "__main__":
    sys.exit(main())
