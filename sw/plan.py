"""The driver's planner: how a layer is split into engine runs so that it moves the fewest bytes
for the weight buffer the engine was generated with (its WBUF_WORDS register).

A run computes a contiguous range of output channels (a tile) and reads, through its ports:
its input feature map (all of it; depthwise: the tile's own channels), its channels' parameters,
and its weights, either streamed (a word per MAC item, sw/traffic.py) or once into the weight
buffer (if the tile's weight layout fits it). Tiles start at multiples of Q = max(P, 8) output
channels (depthwise: 8), so that each tile's weights are whole layout groups and its output is
whole channel-block planes of the layer's output (docs/fmformat.md): the tiles' output regions,
placed one after another, are the layer's output region byte for byte.

Bytes read by a plan = sum over tiles of (weights + parameters + input): exactly what the engine's
counters WEIGHT_BYTES + PARAM_BYTES + FM_VALUE_BYTES + FM_BITMAP_BYTES add up to over its runs
(tests/test_plan.py holds the plan to the RTL and to an exhaustive search). The cost is additive
over tiles and depends only on a tile's channel range, so the best partition is a shortest path
over the Q-channel units (dynamic programming, O(units^2)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import fmformat, traffic
from .driver import LayerSpec, check_run, prepare
from .fmformat import BLOCK
from .layout import param_words


@dataclass(frozen=True)
class Tile:
    k0: int                      # output channels k0 .. k1 - 1
    k1: int
    weight_buffer: bool          # WEIGHT_BUFFER for this run
    weight_bytes: int            # what the run reads through the weight port for weights,
    param_bytes: int             # parameters,
    fm_bytes: int                # and through the feature-map port


@dataclass(frozen=True)
class Plan:
    tiles: tuple
    lanes: int
    wbuf_words: int

    @property
    def weight_bytes(self) -> int:
        return sum(t.weight_bytes for t in self.tiles)

    @property
    def param_bytes(self) -> int:
        return sum(t.param_bytes for t in self.tiles)

    @property
    def fm_bytes(self) -> int:
        return sum(t.fm_bytes for t in self.tiles)

    @property
    def bytes_read(self) -> int:
        return self.weight_bytes + self.param_bytes + self.fm_bytes


class Costs:
    """The bytes one tile of `spec` reads, for any channel range (sw/traffic.py's counts)."""

    def __init__(self, spec: LayerSpec, lanes: int, wbuf_words: int, *, eps: int = 0, dense_mode: bool = False,
                 in_layout: str = "compressed", dw_walk: bool = True):
        self.spec, self.lanes, self.wbuf_words = spec, lanes, wbuf_words
        self.kout = spec.weight.shape[0]
        self.c, self.k = spec.input.shape[0], spec.weight.shape[-1]
        self.dw = spec.depthwise
        self.unit = BLOCK if self.dw else max(lanes, BLOCK)
        self.win = traffic.present_windows(spec, eps, dense_mode)
        if self.dw:                       # a depthwise tile reads only its channels' input planes,
            nb = fmformat.blocks(self.c)  # and its items are its blocks' items: prefix sums by block
            fm = [fmformat.encode(spec.input[b * BLOCK:(b + 1) * BLOCK], in_layout)[1].total for b in range(nb)]
            items = [traffic.stream_items(self.win[:, :, b * BLOCK:(b + 1) * BLOCK],
                                          min(BLOCK, self.c - b * BLOCK), lanes, True, dw_walk) for b in range(nb)]
            self.fm_prefix = np.concatenate([[0], np.cumsum(fm)])
            self.items_prefix = np.concatenate([[0], np.cumsum(items)])
        else:
            self.fm_all = fmformat.encode(spec.input, in_layout)[1].total
            self.per_window = int(self.win.sum())

    def fm(self, k0: int, k1: int) -> int:
        if self.dw:
            return int(self.fm_prefix[-(-k1 // BLOCK)] - self.fm_prefix[k0 // BLOCK])
        return self.fm_all

    def stream_weights(self, k0: int, k1: int) -> int:
        if self.dw:
            return int(self.items_prefix[-(-k1 // BLOCK)] - self.items_prefix[k0 // BLOCK]) * self.lanes
        return self.per_window * -(-(k1 - k0) // self.lanes) * self.lanes

    def fill_words(self, k0: int, k1: int) -> int:
        return traffic.fill_words(k1 - k0, self.c, self.k, self.lanes, self.dw)

    def tile(self, k0: int, k1: int, weight_buffer: bool) -> Tile | None:
        """The tile, or None if its weights do not fit the buffer (weight_buffer)."""
        if weight_buffer:
            if self.fill_words(k0, k1) > self.wbuf_words:
                return None
            w = self.fill_words(k0, k1) * self.lanes
        else:
            w = self.stream_weights(k0, k1)
        return Tile(k0, k1, weight_buffer, w, (k1 - k0) * param_words(self.lanes) * self.lanes, self.fm(k0, k1))

    def best_tile(self, k0: int, k1: int) -> Tile:
        options = [t for t in (self.tile(k0, k1, True), self.tile(k0, k1, False)) if t is not None]
        return min(options, key=lambda t: (t.weight_bytes + t.param_bytes + t.fm_bytes, not t.weight_buffer))


def plan(spec: LayerSpec, lanes: int, wbuf_words: int, **options) -> Plan:
    """The tiling of `spec` that reads the fewest bytes on an engine of `lanes` lanes whose weight
    buffer holds `wbuf_words` words (0: none; every tile then streams its weights). Among plans
    that read equally few, the one with the fewest runs. options: eps, dense_mode, in_layout,
    dw_walk (the engine has the depthwise column walk: Engine's generation parameter)."""
    costs = Costs(spec, lanes, wbuf_words, **options)
    u, kout = costs.unit, costs.kout
    n = -(-kout // u)
    bounds = [min(kout, i * u) for i in range(n + 1)]
    # best[i]: (bytes, runs, tiles) of the channels before bounds[i]
    best = [(0, 0, ())] + [None] * n
    for i in range(1, n + 1):
        for j in range(i):
            t = costs.best_tile(bounds[j], bounds[i])
            b, runs, tiles = best[j]
            cand = (b + t.weight_bytes + t.param_bytes + t.fm_bytes, runs + 1, tiles + (t,))
            if best[i] is None or cand[:2] < best[i][:2]:
                best[i] = cand
    return Plan(best[n][2], lanes, wbuf_words)


def sub_spec(spec: LayerSpec, t: Tile) -> LayerSpec:
    """The layer of one tile: its output channels' weights and parameters (depthwise: its input
    channels too)."""
    x = spec.input[t.k0:t.k1] if spec.depthwise else spec.input
    return LayerSpec(f"{spec.name}[k {t.k0}:{t.k1}]", np.ascontiguousarray(x), spec.weight[t.k0:t.k1],
                     spec.bias[t.k0:t.k1], spec.multiplier[t.k0:t.k1], spec.shift[t.k0:t.k1], spec.stride,
                     spec.padding, spec.depthwise, spec.clamp_lo, spec.clamp_hi)


def run_plan(spec: LayerSpec, p: Plan, transport, *, fm_image: bytes | None = None, **options):
    """Run `spec` on `transport` as plan `p`, tile after tile. `fm_image`: the input as it already
    sits in memory (the previous layer's compressed output), used as is. Returns (output tensor,
    result): the result's `counters` are summed over the runs, `out` is the layer's output
    region (the tiles' regions in order), `runs` the tiles' own results (with their tile and job)."""
    out_layout = options.get("out_layout", "compressed")
    y = np.zeros(spec.out_shape, dtype=np.int8)
    counters: dict = {}
    out = bytearray()
    runs = []
    for t in p.tiles:
        sub = sub_spec(spec, t)
        job = prepare(sub, p.lanes, weight_buffer=t.weight_buffer, **options)
        if fm_image is not None:
            if spec.depthwise:
                stride = fmformat.block_stride(*spec.input.shape[1:], options.get("in_layout", "compressed"))
                job.fm_image = fm_image[t.k0 // BLOCK * stride:-(-t.k1 // BLOCK) * stride]
            else:
                job.fm_image = fm_image
        r = transport.execute(job)
        y[t.k0:t.k1] = check_run(sub.name, job, r)
        out += bytes(r["out"][:job.out_bytes])
        for name, v in r["counters"].items():
            counters[name] = counters.get(name, 0) + int(v)
        runs.append(dict(r, tile=t, job=job, out=None))
    assert len(out) == fmformat.region_bytes(*spec.out_shape, out_layout)
    return y, dict(counters=counters, out=bytes(out), runs=runs, tiles=len(p.tiles))
