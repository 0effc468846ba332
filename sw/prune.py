"""`fmprune prune`: structured pruning of a network trained here, after Anwar, Hwang and Sung,
*Structured Pruning of Deep Convolutional Neural Networks* (arXiv 1512.08571).

Three granularities, alone or together:

- **channel**: a whole output feature map of a standard or pointwise convolution. The pruned
  channel's convolution weights and its BatchNorm scale and shift are zeroed, so the feature
  map is exactly 0 after the ReLU; a depthwise convolution that reads only that channel is
  pruned with it (its weights, scale and shift), so the zero map passes through it.
- **kernel**: a whole k x k kernel between an input and an output channel (or, with
  ``group`` G > 1, the G kernels of G consecutive output channels from one input channel: the
  engine's lane group, which it can skip as a whole). A depthwise kernel is its channel's.
- **strided**: intra-kernel strided sparsity: in each layer with k > 1 one pattern of taps is
  kept in every kernel, the taps t = ky k + kx with (t - offset) mod s == 0; s is chosen from the
  target, the offsets by the search.

Which units to prune is chosen with the paper's particle filter: each particle is a candidate
mask, weighted by the misclassification rate (MCR) of the network with that mask on a
validation split (never the test split), resampled by weight and perturbed by swapping pruned
and kept units; the best mask seen survives. The search runs layer by layer, in stages of
increasing sparsity, and the network is retrained after each stage with the masks held. A
magnitude criterion (the smallest L1 norms; for strided, the pattern keeping the most |w|) runs
the same schedule, as the paper's comparison.

Nothing here is a library's: torch has magnitude pruning utilities (torch.nn.utils.prune) but
no particle filter and no coupling of a channel to its BatchNorm and depthwise successor, so the
masks are kept here and applied to the parameters directly."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

GRANULARITIES = ("channel", "kernel", "strided")
METHODS = ("particle", "magnitude")


class PruneError(ValueError):
    """Bad options or a network this tool cannot prune: one line for the user."""


@dataclass
class ConvLayer:
    """A convolution of the network in execution order, as the golden model names it (convN)."""
    name: str
    conv: nn.Conv2d
    bn: nn.BatchNorm2d | None
    depthwise: bool
    # the depthwise convolution (and its BatchNorm) that reads only this layer's channels, if the
    # next convolution is one: pruned with this layer's channels
    follower: "ConvLayer | None" = None


def conv_layers(model: nn.Module) -> list[ConvLayer]:
    """The model's Conv2d layers in module order, each with the BatchNorm2d that follows it."""
    mods = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    layers = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None
            dw = m.groups > 1
            if dw and not (m.groups == m.in_channels == m.out_channels):
                raise PruneError(f"conv{len(layers) + 1}: grouped convolution with {m.groups} groups "
                                 "(only depthwise, groups = channels, is supported)")
            layers.append(ConvLayer(f"conv{len(layers) + 1}", m, bn, dw))
    for a, b in zip(layers, layers[1:]):
        if b.depthwise and not a.depthwise and b.conv.in_channels == a.conv.out_channels:
            a.follower = b
    return layers


@dataclass
class Masks:
    """Per layer: the kept weights (a bool tensor shaped like the weight) and the kept output
    channels (bool, one a channel: False zeroes the BatchNorm's scale and shift too)."""
    weight: dict[str, torch.Tensor] = field(default_factory=dict)
    channel: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def full(cls, layers):
        return cls({l.name: torch.ones_like(l.conv.weight, dtype=torch.bool) for l in layers},
                   {l.name: torch.ones(l.conv.out_channels, dtype=torch.bool) for l in layers})

    def copy(self):
        return Masks({k: v.clone() for k, v in self.weight.items()}, {k: v.clone() for k, v in self.channel.items()})


@torch.no_grad()
def apply(layers: list[ConvLayer], masks: Masks) -> None:
    """Zero what the masks remove, in place (run after every optimiser step while retraining)."""
    for l in layers:
        w = masks.weight[l.name] & masks.channel[l.name][:, None, None, None]
        l.conv.weight.mul_(w)
        if l.conv.bias is not None:
            l.conv.bias.mul_(masks.channel[l.name])
        if l.bn is not None:
            l.bn.weight.mul_(masks.channel[l.name])
            l.bn.bias.mul_(masks.channel[l.name])


def _set_channels(masks: Masks, layer: ConvLayer, keep: torch.Tensor) -> None:
    masks.channel[layer.name] = keep.clone()
    if layer.follower is not None:
        masks.channel[layer.follower.name] = keep.clone()


# -- the units of each granularity ---------------------------------------------------------------

def channel_units(layer: ConvLayer) -> int | None:
    """Output channels of a standard / pointwise layer; None for a depthwise one (pruned with the
    layer before it)."""
    return None if layer.depthwise else layer.conv.out_channels


def kernel_shape(layer: ConvLayer, group: int) -> tuple[int, int]:
    """(output groups, input channels) of the kernel units; depthwise: (channels, 1)."""
    o, i = layer.conv.weight.shape[:2]
    return (o, 1) if layer.depthwise else (-(-o // group), i)


def kernel_mask(layer: ConvLayer, keep: torch.Tensor, group: int) -> torch.Tensor:
    """The weight mask of kept kernel units `keep` (output groups x input channels)."""
    o, i, kh, kw = layer.conv.weight.shape
    if layer.depthwise:
        m = keep.reshape(o, 1)
    else:
        m = keep.repeat_interleave(group, dim=0)[:o]
    return m[:, :, None, None].expand(o, i, kh, kw).clone()


def strided_taps(k: int, s: int, offset: int) -> torch.Tensor:
    """The k x k taps kept by the strided pattern (s, offset): t = ky k + kx, (t - offset) % s == 0."""
    t = torch.arange(k * k)
    return (((t - offset) % s) == 0).reshape(k, k)


def strided_stride(k: int, target: float) -> int:
    """The pattern's s whose removed share of the k x k taps is nearest `target` (1: none)."""
    best = min(range(1, k * k + 1), key=lambda s: (abs((1 - math.ceil(k * k / s) / (k * k)) - target), s))
    return best


# -- evaluation ----------------------------------------------------------------------------------

@torch.no_grad()
def mcr(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The misclassification rate of `model` on (x, y)."""
    model.eval()
    return float((model(x).argmax(1) != y).float().mean())


class _Trial:
    """Evaluates a candidate mask on a copy of the weights: set, measure, restore."""

    def __init__(self, model, layers, x, y):
        self.model, self.layers, self.x, self.y = model, layers, x, y
        self.saved = {k: v.clone() for k, v in model.state_dict().items()}

    def __call__(self, masks: Masks) -> float:
        apply(self.layers, masks)
        r = mcr(self.model, self.x, self.y)
        self.model.load_state_dict(self.saved)
        return r


def _magnitude_order(scores: torch.Tensor) -> torch.Tensor:
    """Unit indices from the least to the most important (ties by index: deterministic)."""
    return torch.argsort(scores.flatten(), stable=True)


def particle_filter(n_units: int, n_prune: int, evaluate, *, particles: int, iterations: int, noise: float,
                    rng: np.random.Generator, tiebreak: np.ndarray | None = None, prior: np.ndarray | None = None,
                    fixed: np.ndarray | None = None) -> tuple[np.ndarray, float, dict]:
    """The paper's search over binary masks: `n_prune` of `n_units` pruned (True = kept). Units
    in `fixed` (pruned at an earlier stage) stay pruned and count towards n_prune. The particles
    start from `prior` (the magnitude mask; random without one), each perturbed but the first;
    a particle's weight is exp(-(MCR - best MCR) / T) with T the spread of the MCRs (or 1e-3 when
    they agree); particles are resampled systematically by weight, and each is perturbed by
    swapping about `noise` x (the free pruned units), at least one, pruned units for kept ones.
    `evaluate(keep)` returns the MCR. Returns the best mask seen, its MCR and the history (best MCR
    per iteration). Ties between equal MCRs go to the smaller `tiebreak` sum over the pruned units
    (the magnitude), then to the earlier particle."""
    fixed = np.zeros(n_units, dtype=bool) if fixed is None else np.asarray(fixed, dtype=bool)
    n_free = n_prune - int(fixed.sum())
    if n_free < 0:
        raise ValueError(f"{int(fixed.sum())} units already pruned, more than the {n_prune} to prune")
    if n_free == 0 or n_free == int((~fixed).sum()):
        keep = ~fixed if n_free == 0 else np.zeros(n_units, dtype=bool)
        return keep, evaluate(keep), dict(best_mcr=[])
    tie = np.zeros(n_units) if tiebreak is None else np.asarray(tiebreak, dtype=np.float64)
    free = np.flatnonzero(~fixed)

    def perturb(p):
        p = p.copy()
        pruned, kept = np.flatnonzero(~p & ~fixed), np.flatnonzero(p)
        n_swap = min(max(1, int(rng.binomial(n_free, noise))), len(pruned), len(kept))
        p[rng.choice(pruned, n_swap, replace=False)] = True
        p[rng.choice(kept, n_swap, replace=False)] = False
        return p

    if prior is None:
        pop = []
        for _ in range(particles):
            keep = ~fixed
            keep[rng.choice(free, n_free, replace=False)] = False
            pop.append(keep)
    else:
        prior = np.asarray(prior, dtype=bool)
        assert int((~prior).sum()) == n_prune and not (prior & fixed).any()
        pop = [prior.copy()] + [perturb(prior) for _ in range(particles - 1)]
    best, best_key, history = None, None, []
    for it in range(iterations):
        scores = np.array([evaluate(p) for p in pop])
        for p, s in zip(pop, scores):
            key = (s, float(tie[~p].sum()))
            if best_key is None or key < best_key:
                best, best_key = p.copy(), key
        history.append(best_key[0])
        if it == iterations - 1:
            break
        spread = float(scores.std())
        w = np.exp(-(scores - scores.min()) / (spread if spread > 0 else 1e-3))
        w /= w.sum()
        pos = (rng.random() + np.arange(particles)) / particles           # systematic resampling
        idx = np.minimum(np.searchsorted(np.cumsum(w), pos), particles - 1)
        pop = [perturb(pop[i]) for i in idx]
    return best, best_key[0], dict(best_mcr=history)


# -- one layer's choice ---------------------------------------------------------------------------

@dataclass
class Options:
    granularity: tuple[str, ...] = ("channel",)
    target: float = 0.5                 # share of each layer's units (or taps) pruned at the end
    method: str = "particle"
    particles: int = 16
    iterations: int = 4
    noise: float = 0.1
    stages: int = 2
    retrain_epochs: int = 4
    group: int = 1                      # kernel units of this many output channels
    max_drop: float | None = None       # accuracy budget on the validation split (stop before)
    seed: int = 0
    val_images: int = 256

    def check(self):
        bad = [g for g in self.granularity if g not in GRANULARITIES]
        if bad or not self.granularity:
            raise PruneError(f"--granularity {','.join(self.granularity)}: choose from {', '.join(GRANULARITIES)} "
                             "(comma-separated)")
        if not 0 <= self.target < 1:
            raise PruneError(f"--target {self.target}: the pruned share must be in 0 .. 1 (exclusive), e.g. 0.5")
        if self.method not in METHODS:
            raise PruneError(f"--method {self.method}: choose particle or magnitude")
        for name, lo in (("particles", 2), ("iterations", 1), ("stages", 1), ("group", 1)):
            if getattr(self, name) < lo:
                raise PruneError(f"--{name} {getattr(self, name)}: must be at least {lo}")
        if not 0 < self.noise <= 1:
            raise PruneError(f"--noise {self.noise}: the swap share must be in (0, 1], e.g. 0.1")
        if self.retrain_epochs < 0:
            raise PruneError(f"--retrain-epochs {self.retrain_epochs}: must be 0 or more")


def _prune_layer(layer, gran, share, masks, trial, opts, rng, log):
    """Choose `layer`'s units of granularity `gran` at `share` pruned; updates `masks`."""
    w = layer.conv.weight.detach()
    if gran == "channel":
        n = channel_units(layer)
        if n is None:
            return
        n_prune = min(n - 1, round(share * n))
        score = w.abs().sum(dim=(1, 2, 3)).numpy()
        current = masks.channel[layer.name].numpy().copy()

        def make(keep):
            m = masks.copy()
            _set_channels(m, layer, torch.from_numpy(keep))
            return m
    elif gran == "kernel":
        go, gi = kernel_shape(layer, opts.group)
        n = go * gi
        n_prune = min(n - 1, round(share * n))
        if layer.depthwise:
            score = w.abs().sum(dim=(1, 2, 3)).numpy()
        else:
            per = w.abs().sum(dim=(2, 3))                                    # o x i
            pad = go * opts.group - per.shape[0]
            per = F.pad(per, (0, 0, 0, pad))
            score = per.reshape(go, opts.group, gi).sum(1).flatten().numpy()
        # a unit is pruned once all its weights are (a channel pruned counts too)
        wm = masks.weight[layer.name] & masks.channel[layer.name][:, None, None, None]
        if layer.depthwise:
            current = wm.flatten(1).any(1).numpy().copy()
        else:
            per_k = F.pad(wm.flatten(2).any(2).float(), (0, 0, 0, go * opts.group - wm.shape[0]))
            current = (per_k.reshape(go, opts.group, gi).sum(1) > 0).flatten().numpy().copy()

        def make(keep):
            m = masks.copy()
            m.weight[layer.name] = m.weight[layer.name] & kernel_mask(
                layer, torch.from_numpy(keep).reshape(go, gi), opts.group)
            return m
    else:                                                                     # strided
        k = layer.conv.kernel_size[0]
        if k == 1:
            return
        s = strided_stride(k, share)
        if s == 1:
            return
        cands = list(range(s))
        kept_mag = [float((w.abs() * strided_taps(k, s, o)).sum()) for o in cands]
        if opts.method == "magnitude":
            o = int(np.argmax(kept_mag))
        else:
            # the particle filter over the offset (a particle: one offset; perturbed by a re-draw)
            pop = [int(v) for v in rng.choice(cands, opts.particles)]
            best = None
            for it in range(opts.iterations):
                sc = {o: None for o in set(pop)}
                for o in sc:
                    m = masks.copy()
                    m.weight[layer.name] = m.weight[layer.name] & strided_taps(k, s, o)
                    sc[o] = trial(m)
                for o in pop:
                    key = (sc[o], -kept_mag[o])
                    if best is None or key < best[0]:
                        best = (key, o)
                scores = np.array([sc[o] for o in pop])
                spread = float(scores.std())
                wts = np.exp(-(scores - scores.min()) / (spread if spread > 0 else 1e-3))
                wts /= wts.sum()
                pop = [int(pop[i]) for i in rng.choice(len(pop), len(pop), p=wts)]
                pop = [int(rng.choice(cands)) if rng.random() < opts.noise else o for o in pop]
            o = best[1]
        masks.weight[layer.name] = masks.weight[layer.name] & strided_taps(k, s, o)
        log.append(dict(layer=layer.name, granularity=gran, stride=s, offset=o))
        return
    fixed = ~current
    n_prune = max(n_prune, int(fixed.sum()))
    # the magnitude mask: the units pruned before, then the smallest of the rest
    mag = current.copy()
    order = [u for u in _magnitude_order(torch.from_numpy(score)).numpy() if current[u]]
    mag[order[:n_prune - int(fixed.sum())]] = False
    if opts.method == "magnitude":
        keep, info = mag, {}
    else:
        keep, _, info = particle_filter(n, n_prune, lambda kp: trial(make(kp)), particles=opts.particles,
                                        iterations=opts.iterations, noise=opts.noise, rng=rng, tiebreak=score,
                                        prior=mag, fixed=fixed)
    new = make(keep)
    masks.weight, masks.channel = new.weight, new.channel
    log.append(dict(layer=layer.name, granularity=gran, units=n, pruned=int((~keep).sum()), **info))


# -- the whole schedule ---------------------------------------------------------------------------

@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor) -> None:
    """BatchNorm's running statistics measured afresh on `x` (a cumulative average over one
    pass): pruning moves every later layer's input distribution, and the old statistics then
    mislead both the search's evaluations and the first retraining steps."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), 256):
        model(x[i:i + 256])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def _retrain(model, layers, masks, xtr, ytr, epochs, seed, lr=3e-3):
    """Retraining with the masks held (re-applied after every step): the BatchNorm statistics
    recalibrated first, Adam at `lr` annealed to 0 over the epochs (the training's own settings)."""
    if epochs <= 0:
        return
    recalibrate_bn(model, xtr[:1024])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    batch = 64
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(ytr) // batch))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            apply(layers, masks)
    model.eval()


def statistics(model: nn.Module, layers: list[ConvLayer], input_shape=(1, 32, 32)) -> dict:
    """Weights, non-zero weights and MACs (dense, and with zero weights skipped) of the
    convolutions and linear layers, from the output sizes a forward pass shows."""
    sizes = {}
    hooks = [l.conv.register_forward_hook(lambda m, i, o, n=l.name: sizes.__setitem__(n, o.shape[2] * o.shape[3]))
             for l in layers]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    per = {}
    for l in layers:
        w = l.conv.weight.detach()
        ch = l.bn.weight.detach() != 0 if l.bn is not None else torch.ones(w.shape[0], dtype=torch.bool)
        nz = int(((w != 0) & ch[:, None, None, None]).sum())
        per[l.name] = dict(weights=int(w.numel()), nonzero=nz, macs=int(w.numel()) * sizes[l.name],
                           nonzero_macs=nz * sizes[l.name], channels=int(w.shape[0]), channels_kept=int(ch.sum()))
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)]
    fc_w = sum(int(m.weight.numel()) for m in fc)
    tot = {k: sum(v[k] for v in per.values()) for k in ("weights", "nonzero", "macs", "nonzero_macs")}
    return dict(per_layer=per, conv_weights=tot["weights"], conv_nonzero=tot["nonzero"],
                conv_sparsity=1 - tot["nonzero"] / tot["weights"],
                params=sum(int(p.numel()) for p in model.parameters()),
                params_nonzero=sum(int((p != 0).sum()) for p in model.parameters()),
                macs=tot["macs"] + fc_w, nonzero_macs=tot["nonzero_macs"] + sum(int((m.weight != 0).sum()) for m in fc))


def prune(model: nn.Module, data, opts: Options, echo=print) -> dict:
    """Prune `model` in place. `data` = (train x, train y): the last opts.val_images of the train
    split are the validation set the search and the accuracy budget use; the rest retrain."""
    opts.check()
    torch.manual_seed(opts.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(opts.seed)
    xtr, ytr = data
    nv = min(opts.val_images, len(ytr) // 4)
    xfit, yfit, xval, yval = xtr[:-nv], ytr[:-nv], xtr[-nv:], ytr[-nv:]
    layers = conv_layers(model)
    masks = Masks.full(layers)
    base = 1 - mcr(model, xval, yval)
    log, stages = [], []
    prev = None
    t0 = time.perf_counter()
    for st in range(1, opts.stages + 1):
        share = opts.target * st / opts.stages
        saved = (masks.copy(), {k: v.clone() for k, v in model.state_dict().items()})
        for gran in opts.granularity:
            for layer in layers:
                trial = _Trial(model, layers, xval, yval)
                _prune_layer(layer, gran, share, masks, trial, opts, rng, log)
                apply(layers, masks)
        _retrain(model, layers, masks, xfit, yfit, opts.retrain_epochs, opts.seed + st)
        acc = 1 - mcr(model, xval, yval)
        stats = statistics(model, layers, tuple(xtr.shape[1:]))
        stages.append(dict(stage=st, share=share, val_accuracy=acc, conv_sparsity=stats["conv_sparsity"],
                           nonzero_macs=stats["nonzero_macs"]))
        if echo:
            echo(f"stage {st}/{opts.stages}: {share:.0%} of each layer's units, conv weights {stats['conv_sparsity']:.1%} "
                 f"zero, validation accuracy {acc:.4f} (unpruned {base:.4f}), {time.perf_counter() - t0:.0f} s")
        if opts.max_drop is not None and base - acc > opts.max_drop:
            masks, state = saved
            model.load_state_dict(state)
            stages[-1]["reverted"] = True
            if echo:
                echo(f"  over the accuracy budget ({base - acc:.4f} > {opts.max_drop}): stage {st} undone, stopping")
            break
        prev = st
    return dict(layers=layers, masks=masks, log=log, stages=stages, val_accuracy_unpruned=base,
                stages_kept=prev or 0, search_s=round(time.perf_counter() - t0, 1))


# -- the command ---------------------------------------------------------------------------------

def run(opts: Options, *, weights: Path | None = None, out_dir: Path = Path("build") / "prune", compare: bool = True,
        echo=print) -> dict:
    """`fmprune prune`: a network trained here (by default the digit network) pruned by the
    particle filter (and by magnitude,
    with `compare`), each retrained, quantised with the golden model and written as a checkpoint
    that `train.load` (and every `--weights` of the digit network) reads. The report (NET-GRAN.json,
    its path in the result's "report") is what sim.network.prune_hardware adds the RTL's figures to."""
    from . import train
    opts.check()
    path = Path(weights) if weights is not None else train.CHECKPOINT
    if not path.exists():
        raise PruneError(f"{path} does not exist: run `make train` first (or give --weights FILE)")
    meta = train.checkpoint_meta(path)
    net = meta["net"]
    xtr, ytr, xte, yte, ddesc, _, _ = train.dataset(meta["data_dir"])
    methods = [opts.method] + (["magnitude"] if compare and opts.method != "magnitude" else [])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_model, desc = train.load(path)
    layers = conv_layers(base_model)
    q0 = train.quantise(base_model, desc, calib=xtr, net=net)
    result = dict(network=net, data=ddesc, weights=desc, options={k: (list(v) if isinstance(v, tuple) else v)
                                                             for k, v in vars(opts).items()},
                  unpruned=dict(float_accuracy=train.accuracy(base_model, xte, yte),
                                int_accuracy=train.int_accuracy(q0, xte, yte),
                                **_summary(statistics(base_model, layers, tuple(xtr.shape[1:])))),
                  test_images=int(len(yte)), methods={})
    gname = "+".join(opts.granularity)
    tag = f"{net}-{gname}-t{round(opts.target * 100)}"
    for method in methods:
        model, _ = train.load(path)
        o = Options(**{**vars(opts), "method": method})
        if echo:
            echo(f"{method} criterion, {gname}, target {opts.target:.0%}:")
        r = prune(model, (xtr, ytr), o, echo=echo)
        ckpt = out_dir / f"{tag}-{method}.pt"
        torch.save(model.state_dict(), ckpt)
        ckpt.with_suffix(".json").write_text(json.dumps(dict(
            meta, pruned=dict(granularity=list(opts.granularity), target=opts.target, method=method,
                              from_checkpoint=str(path))), indent=2) + "\n")
        pruned, pdesc = train.load(ckpt)
        q = train.quantise(pruned, pdesc, calib=xtr, net=net)
        stats = statistics(pruned, conv_layers(pruned), tuple(xtr.shape[1:]))
        row = dict(checkpoint=str(ckpt), float_accuracy=train.accuracy(pruned, xte, yte),
                   int_accuracy=train.int_accuracy(q, xte, yte), stages=r["stages"], search_s=r["search_s"],
                   val_accuracy_unpruned=r["val_accuracy_unpruned"], log=r["log"], **_summary(stats))
        result["methods"][method] = row
        if echo:
            echo(f"  test accuracy float {row['float_accuracy']:.4f}, integer {row['int_accuracy']:.4f}; conv weights "
                 f"{row['conv_sparsity']:.1%} zero, non-zero MACs {row['nonzero_macs']:,} of {row['macs']:,}, "
                 f"non-zero parameters {row['params_nonzero']:,} of {row['params']:,}; wrote {ckpt}")
    report = out_dir / f"{tag}.json"
    result["report"] = str(report)
    result["checkpoint"] = str(path)
    result["data_dir"] = meta["data_dir"]
    report.write_text(json.dumps(result, indent=2) + "\n")
    if echo:
        u = result["unpruned"]
        echo(f"unpruned: test accuracy float {u['float_accuracy']:.4f}, integer {u['int_accuracy']:.4f} "
             f"({result['test_images']} held-out images); wrote {report}")
    return result


def _summary(stats):
    return {k: stats[k] for k in ("conv_weights", "conv_nonzero", "conv_sparsity", "params", "params_nonzero",
                                  "macs", "nonzero_macs")} | dict(
        per_layer={k: {n: v[n] for n in ("channels_kept", "channels", "nonzero", "weights")}
                   for k, v in stats["per_layer"].items()})


# -- the study: accuracy against sparsity ---------------------------------------------------------

def study(targets=(0.25, 0.5, 0.75), granularities=("channel", "kernel", "strided"), *, weights=None,
          out_dir: Path = Path("build") / "prune", echo=print, **options) -> dict:
    """Each granularity at each target, by the particle filter and by magnitude: test accuracy
    (integer golden model) against the share of conv weights zero and of MACs removed. Writes
    out_dir/study.json and study.png."""
    rows = []
    for g in granularities:
        for t in targets:
            r = run(Options(granularity=tuple(g.split(",")), target=t, **options), weights=weights, out_dir=out_dir,
                    echo=echo)
            for m, v in r["methods"].items():
                rows.append(dict(granularity=g, target=t, method=m, int_accuracy=v["int_accuracy"],
                                 float_accuracy=v["float_accuracy"], conv_sparsity=v["conv_sparsity"],
                                 macs_removed=1 - v["nonzero_macs"] / v["macs"],
                                 params_nonzero=v["params_nonzero"], checkpoint=v["checkpoint"]))
            base = r["unpruned"]
    res = dict(network=r["network"], weights=r["weights"], data=r["data"], test_images=r["test_images"],
               unpruned=dict(int_accuracy=base["int_accuracy"], float_accuracy=base["float_accuracy"],
                             params=base["params"], macs=base["macs"]),
               options=dict(options), rows=rows,
               paper=dict(source="Anwar, Hwang and Sung, arXiv 1512.08571 (CIFAR-10, a 3-layer CNN; MNIST)",
                          note="their figures are for other networks and data: not comparable point for point"))
    out_dir = Path(out_dir)
    (out_dir / "study.json").write_text(json.dumps(res, indent=2) + "\n")
    _plot_study(res, out_dir / "study.png")
    if echo:
        echo(f"{'granularity':>24s} {'target':>6s} {'method':>9s} {'int acc':>8s} {'conv zero':>9s} {'MACs off':>8s}")
        for row in rows:
            echo(f"{row['granularity']:>24s} {row['target']:6.2f} {row['method']:>9s} {row['int_accuracy']:8.4f} "
                 f"{row['conv_sparsity']:9.1%} {row['macs_removed']:8.1%}")
        echo(f"unpruned: integer accuracy {base['int_accuracy']:.4f}; wrote {out_dir}/study.json and study.png")
    return res


def _plot_study(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, xkey, xlabel in ((axes[0], "conv_sparsity", "share of conv weights zero"),
                             (axes[1], "macs_removed", "share of MACs removed (zero weights)")):
        for g in dict.fromkeys(r["granularity"] for r in res["rows"]):
            for m, style in (("particle", "o-"), ("magnitude", "s--")):
                pts = sorted((r[xkey], r["int_accuracy"]) for r in res["rows"] if r["granularity"] == g and r["method"] == m)
                if pts:
                    ax.plot(*zip(*pts), style, label=f"{g}, {m}", markersize=4)
        ax.axhline(res["unpruned"]["int_accuracy"], color="k", lw=0.8, ls=":", label="unpruned")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"integer top-1, {res['test_images']} held-out images")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{res['network']} trained here ({res['data']}): structured pruning, particle filter "
                 "against magnitude", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    """`make prune-study`: the study with the command's defaults on the trained digit network."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m fmprune.sw.prune", description=study.__doc__)
    ap.add_argument("--targets", default="0.25,0.5,0.75")
    ap.add_argument("--granularities", default="channel,kernel,strided")
    ap.add_argument("--weights", default=None)
    args = ap.parse_args(argv)
    try:
        study(tuple(float(t) for t in args.targets.split(",")), tuple(args.granularities.split(",")),
              weights=args.weights)
    except (PruneError, FileNotFoundError, ValueError) as e:
        print(f"prune study: error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
