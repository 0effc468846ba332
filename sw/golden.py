"""The fixed-point golden model: a zoo network traced with torch.fx, BatchNorm folded into the
preceding convolution, activation scales calibrated on real photographs, then run with integer
arithmetic only (sw/quant.py). The hardware matches it bit for bit.

Tensors are always N x C x H x W; a fully-connected layer is a 1x1 convolution on a 1x1 map
(flatten gives N x C*H*W x 1 x 1), as the engine runs it.
"""
from __future__ import annotations

import difflib
import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from . import quant
from .data import calibration_batch, load_image, preprocess
from .quant import Activation
from .weights import UnknownNameError, build_model
from .zoo import INPUT_SIZE

ACT_MODULES = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky"}
ACT_FUNCTIONS = {F.relu: "relu", torch.relu: "relu"}


class UnsupportedError(Exception):
    """A network construct the golden model does not implement."""


@dataclass
class Op:
    """One step of the fused network. `name` is the tensor it produces."""
    kind: str                    # input conv maxpool avgpool add cat flatten relu
    name: str
    inputs: list[str]
    layer: str | None = None     # convN / fcN for kind == conv
    module: str | None = None    # the torch module (convolution or linear) it came from
    fc: bool = False
    weight: torch.Tensor | None = None   # folded float weight, K x C/g x kh x kw
    bias: torch.Tensor | None = None
    stride: int = 1
    padding: int = 0
    groups: int = 1
    act: str = "none"
    params: dict = field(default_factory=dict)


def _only_user(node: fx.Node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _act_of(node, mods):
    if node is None:
        return None
    if node.op == "call_module" and type(mods[node.target]) in ACT_MODULES:
        m = mods[node.target]
        if isinstance(m, nn.LeakyReLU) and m.negative_slope != quant.LEAKY_SLOPE:
            raise UnsupportedError(f"{node.target}: leaky slope {m.negative_slope}, only {quant.LEAKY_SLOPE}")
        return ACT_MODULES[type(m)]
    if node.op == "call_function" and node.target in ACT_FUNCTIONS:
        return ACT_FUNCTIONS[node.target]
    return None


def _pair(v, what):
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise UnsupportedError(f"non-square {what} {v}")
        return int(v[0])
    return int(v)


def fuse(model: nn.Module) -> list[Op]:
    """Trace `model` and fuse Conv/Linear + BatchNorm + activation into conv ops."""
    gm = fx.symbolic_trace(model)
    mods = dict(gm.named_modules())
    alias: dict[str, str] = {}
    consumed: set[fx.Node] = set()
    ops: list[Op] = []
    counts = {"conv": 0, "fc": 0}

    def src(a):
        return alias.get(a.name, a.name)

    for node in gm.graph.nodes:
        if node in consumed:
            continue
        if node.op == "placeholder":
            ops.append(Op("input", node.name, []))
        elif node.op == "output":
            ops.append(Op("output", node.name, [src(node.args[0])]))
        elif node.op == "call_module":
            m = mods[node.target]
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fc = isinstance(m, nn.Linear)
                w = m.weight.detach().double()
                b = m.bias.detach().double() if m.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
                cur = node
                nxt = _only_user(cur)
                if nxt is not None and nxt.op == "call_module" and isinstance(mods[nxt.target], nn.BatchNorm2d):
                    bn = mods[nxt.target]
                    w, b = fold_batchnorm(w, b, bn)
                    consumed.add(nxt)
                    cur = nxt
                nxt = _only_user(cur)
                act = _act_of(nxt, mods)
                if act is not None:
                    consumed.add(nxt)
                    cur = nxt
                kind = "fc" if fc else "conv"
                counts[kind] += 1
                op = Op("conv", cur.name, [src(node.args[0])], layer=f"{kind}{counts[kind]}",
                        module=node.target, fc=fc, act=act or "none")
                if fc:
                    op.weight, op.bias = w[:, :, None, None], b
                else:
                    if m.padding_mode != "zeros" or _pair(m.dilation, "dilation") != 1:
                        raise UnsupportedError(f"{node.target}: only zero padding and dilation 1")
                    op.weight, op.bias = w, b
                    op.stride = _pair(m.stride, "stride")
                    op.padding = _pair(m.padding, "padding")
                    op.groups = m.groups
                ops.append(op)
            elif type(m) in ACT_MODULES:
                ops.append(Op("relu", node.name, [src(node.args[0])], act=ACT_MODULES[type(m)]))
            elif isinstance(m, nn.MaxPool2d):
                ops.append(Op("maxpool", node.name, [src(node.args[0])], params=dict(
                    kernel=_pair(m.kernel_size, "pool"), stride=_pair(m.stride, "stride"),
                    padding=_pair(m.padding, "padding"), ceil_mode=m.ceil_mode)))
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                ops.append(Op("avgpool", node.name, [src(node.args[0])],
                              params=dict(size=_pair(m.output_size, "pool size"))))
            elif isinstance(m, nn.Dropout):
                alias[node.name] = src(node.args[0])
            else:
                raise UnsupportedError(f"{node.target}: {type(m).__name__} is not supported")
        elif node.op == "call_function":
            t = node.target
            if t in (operator.add, torch.add):
                op = Op("add", node.name, [src(a) for a in node.args[:2]])
                act = _act_of(_only_user(node), mods)
                if act is not None:
                    nxt = _only_user(node)
                    consumed.add(nxt)
                    op.name, op.act = nxt.name, act
                ops.append(op)
            elif t is torch.cat:
                dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
                if dim != 1:
                    raise UnsupportedError("torch.cat only along channels")
                ops.append(Op("cat", node.name, [src(a) for a in node.args[0]]))
            elif t is torch.flatten:
                ops.append(Op("flatten", node.name, [src(node.args[0])]))
            elif t is F.adaptive_avg_pool2d:
                ops.append(Op("avgpool", node.name, [src(node.args[0])],
                              params=dict(size=_pair(node.args[1], "pool size"))))
            elif t in ACT_FUNCTIONS:
                ops.append(Op("relu", node.name, [src(node.args[0])], act=ACT_FUNCTIONS[t]))
            else:
                raise UnsupportedError(f"function {t} is not supported")
        else:
            raise UnsupportedError(f"fx node {node.op} {node.target} is not supported")
    return ops


def fold_batchnorm(w: torch.Tensor, b: torch.Tensor, bn: nn.BatchNorm2d):
    """w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps) + beta."""
    g = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    w = w * g.reshape(-1, *([1] * (w.dim() - 1)))
    b = (b - bn.running_mean.double()) * g + bn.bias.detach().double()
    return w, b


def _act_float(x, act):
    if act == "relu":
        return F.relu(x)
    if act == "relu6":
        return F.relu6(x)
    if act == "leaky":
        return F.leaky_relu(x, quant.LEAKY_SLOPE)
    return x


@torch.no_grad()
def run_float(ops: list[Op], x: torch.Tensor, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """Run the fused network in float (float64 by default); returns every tensor by name."""
    env: dict[str, torch.Tensor] = {}
    for op in ops:
        ins = [env[i] for i in op.inputs]
        if op.kind == "input":
            y = x.to(dtype)
        elif op.kind == "conv":
            y = _act_float(F.conv2d(ins[0], op.weight.to(dtype), op.bias.to(dtype), op.stride, op.padding,
                                    1, op.groups), op.act)
        elif op.kind == "relu":
            y = _act_float(ins[0], op.act)
        elif op.kind == "maxpool":
            p = op.params
            y = F.max_pool2d(ins[0], p["kernel"], p["stride"], p["padding"], ceil_mode=p["ceil_mode"])
        elif op.kind == "avgpool":
            y = F.adaptive_avg_pool2d(ins[0], op.params["size"])
        elif op.kind == "add":
            y = _act_float(ins[0] + ins[1], op.act)
        elif op.kind == "cat":
            y = torch.cat(ins, 1)
        elif op.kind == "flatten":
            y = ins[0].reshape(ins[0].shape[0], -1, 1, 1)
        elif op.kind == "output":
            y = ins[0].reshape(ins[0].shape[0], -1)
        env[op.name] = y
    return env


# Integer model -------------------------------------------------------------------------------

def conv2d_int(x, w, bias, stride=1, padding=0, groups=1):
    """Exact integer convolution: int8 x (N x C x H x W or C x H x W), int8 w, int32 bias ->
    int32 accumulators (wrapping). Computed as a float64 convolution of integers: every partial
    sum is an integer far below 2**53, so nothing is rounded."""
    x = np.asarray(x)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    w = np.asarray(w)
    bound = 128 * 127 * int(np.prod(w.shape[1:]))
    if bound >= 1 << 53:
        raise ValueError("layer too large for the exact float64 path")
    y = F.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                 None, stride, padding, 1, groups)
    acc = y.numpy().astype(np.int64) + np.asarray(bias, dtype=np.int64).reshape(1, -1, 1, 1)
    acc = quant.wrap_int32(acc)
    return acc[0] if squeeze else acc


@dataclass
class QLayer:
    """One quantised convolution / fully-connected layer: what the engine executes."""
    name: str                   # convN / fcN
    module: str
    kind: str                   # standard depthwise pointwise fc
    weight: np.ndarray          # int8 K x C/g x kh x kw
    bias: np.ndarray            # int32 K
    multiplier: np.ndarray      # int32 K
    shift: np.ndarray           # int32 K
    stride: int
    padding: int
    groups: int
    act: Activation
    s_in: float
    s_w: np.ndarray
    s_out: float
    in_shape: tuple = ()
    out_shape: tuple = ()

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def macs(self) -> int:
        k, cg, kh, kw = self.weight.shape
        return int(k * cg * kh * kw * self.out_shape[1] * self.out_shape[2])

    def forward(self, x, eps: int = 0):
        """int8 input (C x H x W or N x C x H x W) -> int8 output, eps-pruned."""
        acc = conv2d_int(quant.prune(x, eps), self.weight, self.bias, self.stride, self.padding, self.groups)
        return quant.requantize(acc, self.multiplier, self.shift, self.act)


def layer_kind(op: Op) -> str:
    k, cg, kh, kw = op.weight.shape
    if op.fc:
        return "fc"
    if op.groups > 1 and cg == 1:
        return "depthwise"
    if op.groups == 1 and kh == kw == 1:
        return "pointwise"
    if op.groups == 1:
        return "standard"
    raise UnsupportedError(f"{op.module}: grouped convolution (groups={op.groups}) is not supported")


def _adaptive_avg_int(x: np.ndarray, size: int) -> np.ndarray:
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x.copy()
    out = np.empty((n, c, size, size), dtype=np.int8)
    for i in range(size):
        y0, y1 = (i * h) // size, -((-(i + 1) * h) // size)
        for j in range(size):
            x0, x1 = (j * w) // size, -((-(j + 1) * w) // size)
            s = x[:, :, y0:y1, x0:x1].astype(np.int64).sum(axis=(2, 3))
            cnt = (y1 - y0) * (x1 - x0)
            out[:, :, i, j] = np.sign(s) * ((2 * np.abs(s) + cnt) // (2 * cnt))   # half away from 0
    return out


ADD_LEFT_SHIFT = 20        # TFLite's add: inputs scaled up by 2**20 before rescaling


class QuantizedNetwork:
    """A zoo network quantised to int8, with its float twin for comparison."""

    def __init__(self, net: str, weights=None, calib_images: torch.Tensor | None = None, *, model=None,
                 weights_desc: str | None = None):
        """A zoo network by name (weights from `weights` or seeded), or any traceable `model`
        (with `weights_desc`) calibrated on `calib_images`."""
        self.net = net
        if model is None:
            self.model, self.weights_desc = build_model(net, weights)
        else:
            self.model, self.weights_desc = model.eval(), weights_desc or "given model"
        self.ops = fuse(self.model)
        calib = calibration_batch() if calib_images is None else calib_images
        self._calibrate(calib)
        self._quantise()

    # calibration: max |x| over the calibration batch for every tensor an op defines
    def _calibrate(self, images):
        env = run_float(self.ops, images, torch.float32)
        by_name = {op.name: op for op in self.ops}
        self.shape = {k: tuple(v.shape[1:]) for k, v in env.items()}
        self.scale: dict[str, float] = {}
        for op in self.ops:
            if op.kind in ("input", "conv", "add", "cat"):
                m = float(env[op.name].abs().max())
                self.scale[op.name] = (m if m > 0 else 1.0) / 127.0
            elif op.kind == "output":
                continue
            else:
                self.scale[op.name] = self.scale[op.inputs[0]]
        for op in self.ops:   # a conv that only feeds a concat writes in the concat's scale
            if op.kind == "cat":
                for i in op.inputs:
                    p = by_name[i]
                    if p.kind == "conv" and sum(i in o.inputs for o in self.ops) == 1:
                        self.scale[i] = self.scale[op.name]

    def _quantise(self):
        self.layers: dict[str, QLayer] = {}
        self.qparams: dict[str, dict] = {}
        for op in self.ops:
            if op.kind == "conv":
                s_in, s_out = self.scale[op.inputs[0]], self.scale[op.name]
                w = op.weight.numpy()
                wmax = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
                s_w = np.where(wmax > 0, wmax, 1.0) / quant.WEIGHT_MAX
                wq = quant.quantize_tensor(w / s_w[:, None, None, None], 1.0).clip(-127, 127)
                bq = np.clip(np.floor(op.bias.numpy() / (s_in * s_w) + 0.5), quant.INT32_MIN, quant.INT32_MAX)
                ms = [quant.quantize_multiplier(s_in * sw / s_out) for sw in s_w]
                self.layers[op.layer] = QLayer(
                    op.layer, op.module, layer_kind(op), wq.astype(np.int8), bq.astype(np.int32),
                    np.array([m for m, _ in ms], dtype=np.int32), np.array([s for _, s in ms], dtype=np.int32),
                    op.stride, op.padding, op.groups, Activation.make(op.act, s_out), s_in, s_w, s_out,
                    self.shape[op.inputs[0]], self.shape[op.name])
            elif op.kind == "add":
                sa, sb, so = (self.scale[op.inputs[0]], self.scale[op.inputs[1]], self.scale[op.name])
                twice = 2 * max(sa, sb)
                self.qparams[op.name] = dict(
                    a=quant.quantize_multiplier(sa / twice), b=quant.quantize_multiplier(sb / twice),
                    out=quant.quantize_multiplier(twice / ((1 << ADD_LEFT_SHIFT) * so)),
                    act=Activation.make(op.act, so))
            elif op.kind == "cat":
                self.qparams[op.name] = {
                    i: quant.quantize_multiplier(self.scale[i] / self.scale[op.name]) for i in op.inputs}

    # names -------------------------------------------------------------------------------
    def layer(self, name: str) -> QLayer:
        """A layer by its short name (conv3, fc1) or full name (mobilenet.conv3)."""
        short = name.split(".", 1)[1] if name.startswith(self.net + ".") else name
        if short not in self.layers:
            raise UnknownNameError(unknown_layer_message(self.net, short, list(self.layers)))
        return self.layers[short]

    # integer inference ------------------------------------------------------------------
    def quantize_input(self, x: torch.Tensor) -> np.ndarray:
        return quant.quantize_tensor(x.numpy(), self.scale[self.ops[0].name])

    def run_int(self, xq: np.ndarray, eps: int = 0, capture=None, conv=None):
        """Integer inference on int8 N x 3 x H x W. Returns int8 logits (N x classes) and, when
        `capture` names a layer, that layer's (input, output); when it is a collection of
        names, a dict of them. `conv(op, x, eps)`, when given, computes the conv / fc layers
        instead of the golden model (the engine, in `fmprune run`)."""
        env: dict[str, np.ndarray] = {}
        many = capture is not None and not isinstance(capture, str)
        captured = {} if many else None
        for op in self.ops:
            ins = [env[i] for i in op.inputs]
            if op.kind == "input":
                y = np.asarray(xq, dtype=np.int8)
            elif op.kind == "conv":
                y = conv(op, ins[0], eps) if conv else self.layers[op.layer].forward(ins[0], eps)
                if many and op.layer in capture:
                    captured[op.layer] = (ins[0], y)
                elif op.layer == capture:
                    captured = (ins[0], y)
            elif op.kind == "relu":
                if op.act != "relu":
                    raise UnsupportedError(f"standalone {op.act} is not supported")
                y = np.maximum(ins[0], 0).astype(np.int8)
            elif op.kind == "maxpool":
                p = op.params
                t = F.max_pool2d(torch.from_numpy(ins[0].astype(np.float32)), p["kernel"], p["stride"],
                                 p["padding"], ceil_mode=p["ceil_mode"])
                y = t.numpy().astype(np.int8)   # the max of int8 values, exact
            elif op.kind == "avgpool":
                y = _adaptive_avg_int(ins[0], op.params["size"])
            elif op.kind == "add":
                q = self.qparams[op.name]
                a = quant.mbqm(ins[0].astype(np.int64) << ADD_LEFT_SHIFT, *q["a"])
                b = quant.mbqm(ins[1].astype(np.int64) << ADD_LEFT_SHIFT, *q["b"])
                y = q["act"].apply(quant.mbqm(a + b, *q["out"])).astype(np.int8)
            elif op.kind == "cat":
                parts = []
                for i, t in zip(op.inputs, ins):
                    if self.scale[i] == self.scale[op.name]:
                        parts.append(t)
                    else:
                        parts.append(np.clip(quant.mbqm(t, *self.qparams[op.name][i]), -128, 127).astype(np.int8))
                y = np.concatenate(parts, axis=1)
            elif op.kind == "flatten":
                y = ins[0].reshape(ins[0].shape[0], -1, 1, 1)
            elif op.kind == "output":
                y = ins[0].reshape(ins[0].shape[0], -1)
                return y, captured
            env[op.name] = y
        raise AssertionError("network has no output")

    def run_image(self, image: str = "china", eps: int = 0, capture: str | None = None):
        x = preprocess(load_image(image), INPUT_SIZE)[None]
        return self.run_int(self.quantize_input(x), eps, capture)

    def output_scale(self) -> float:
        return self.scale[self.ops[-1].inputs[0]]


def unknown_layer_message(net: str, name: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(name, valid, n=5, cutoff=0.5)
    hint = f" Nearest: {', '.join(f'{net}.{n}' for n in near)}." if near else ""
    return (f"unknown layer {net}.{name}.{hint} {net} has {len(valid)} layers: "
            f"{', '.join(valid)} (list them with `fmprune layers {net}`).")


@torch.no_grad()
def layer_table(net: str) -> list[dict]:
    """Every convolution / fc layer of `net` with shapes, MACs and weight bytes (no weights
    needed: shapes come from a float pass of a zero image)."""
    from .weights import check_network
    from . import zoo
    check_network(net)
    model = zoo.NETWORKS[net][0]().eval()
    ops = fuse(model)
    env = run_float(ops, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
    rows = []
    for op in ops:
        if op.kind != "conv":
            continue
        k, cg, kh, kw = op.weight.shape
        cin, h, w = env[op.inputs[0]].shape[1:]
        ko, ho, wo = env[op.name].shape[1:]
        rows.append(dict(
            name=f"{net}.{op.layer}", module=op.module, kind=layer_kind(op),
            input=[int(cin), int(h), int(w)], output=[int(ko), int(ho), int(wo)],
            kernel=int(kh), stride=op.stride, padding=op.padding, groups=op.groups, activation=op.act,
            macs=int(k * cg * kh * kw * ho * wo), weight_bytes=int(k * cg * kh * kw)))
    return rows


def split_layer_name(full: str) -> tuple[str, str]:
    from .weights import check_network
    if "." not in full:
        raise UnknownNameError(f"layer name {full!r} must be NET.convN or NET.fcN, e.g. mobilenet.conv3")
    net, short = full.split(".", 1)
    check_network(net)
    return net, short


def check_layer_name(full: str) -> tuple[str, str]:
    """Validate NET.convN / NET.fcN without building weights (fast), or raise UnknownNameError."""
    net, short = split_layer_name(full)
    valid = [r["name"].split(".", 1)[1] for r in layer_table(net)]
    if short not in valid:
        raise UnknownNameError(unknown_layer_message(net, short, valid))
    return net, short


def export_layer(full: str, out_dir, eps: int = 0, weights=None, image: str = "china") -> dict:
    """Write one layer's test vector (input/weight/bias/multiplier/shift/expected .npy and
    meta.json) to `out_dir`; returns the meta dictionary. The input is the layer's real input
    when the network runs on `image` with every layer pruning at `eps`."""
    import json
    from pathlib import Path
    if eps < 0 or eps > 127:
        raise ValueError(f"eps must be in 0..127 (int8 units), got {eps}")
    net, short = check_layer_name(full)
    qn = QuantizedNetwork(net, weights)
    layer = qn.layer(short)
    _, (x, y) = qn.run_image(image, eps, capture=short)
    x, y = x[0], y[0]
    assert np.array_equal(layer.forward(x, eps), y)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "input.npy", x.astype(np.int8))
    np.save(out / "weight.npy", layer.weight.astype(np.int8))
    np.save(out / "bias.npy", layer.bias.astype(np.int32))
    np.save(out / "multiplier.npy", layer.multiplier.astype(np.int32))
    np.save(out / "shift.npy", layer.shift.astype(np.int32))
    np.save(out / "expected.npy", y.astype(np.int8))
    act = layer.act
    meta = dict(
        layer=f"{net}.{short}", network=net, module=layer.module, kind=layer.kind,
        input_shape=list(x.shape), output_shape=list(y.shape), weight_shape=list(layer.weight.shape),
        kernel=layer.kernel, stride=layer.stride, padding=layer.padding, groups=layer.groups,
        activation=act.kind, clamp_min=act.lo, clamp_max=act.hi,
        leaky_multiplier=act.neg_multiplier, leaky_shift=act.neg_shift,
        eps=eps, scale_in=layer.s_in, scale_out=layer.s_out, scale_weight=[float(v) for v in layer.s_w],
        macs=layer.macs, input_zero_fraction=float(np.mean(x == 0)),
        input_pruned_fraction=float(np.mean(np.abs(x.astype(np.int16)) <= eps)),
        image=image, weights=qn.weights_desc)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
