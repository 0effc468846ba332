"""Engine benchmark on real layers (figures, no asserts): each layer runs on Verilator with
zero skipping (compressed input and output) and in dense mode (skipping off, same hardware).
`python -m fmprune.sim.bench_engine [--lanes P] [--fm-ways N] [--fm-bytes B] [LAYER ...]`; writes build/bench/engine.json."""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from ..sw import driver, fmformat, plan
from ..hw.model import predict
from ..sw.layout import DEFAULT_FM_BYTES, DEFAULT_FM_WAYS, PARAM_BYTES, PORT_BYTES
from ..sw.analyze import nonzero_macs
from ..sw.golden import QuantizedNetwork, split_layer_name
from .runner import SimConfig, SimTransport

DEFAULT_LAYERS = ["mobilenet.conv1", "mobilenet.conv2", "mobilenet.conv3", "mobilenet.conv4",
                  "mobilenet.conv5", "mobilenet.conv6", "vgg16.conv13", "squeezenet.conv2", "squeezenet1_1.conv3"]


def bench_layer(full, qnets, lanes, eps, out_root, fm_ways=DEFAULT_FM_WAYS, fm_bytes=DEFAULT_FM_BYTES):
    net, short = split_layer_name(full)
    if net not in qnets:
        qnets[net] = QuantizedNetwork(net)
    q = qnets[net]
    layer = q.layer(short)
    _, (x, y) = q.run_image("china", eps, capture=short)
    x, want = x[0], y[0]
    spec = driver.LayerSpec(full, x, layer.weight, layer.bias, layer.multiplier, layer.shift, layer.stride,
                            layer.padding, layer.kind == "depthwise", layer.act.lo, layer.act.hi)
    cfg = SimConfig(lanes=lanes, fm_ways=fm_ways, fm_bytes=fm_bytes)
    row = dict(layer=full, kind=layer.kind, stride=layer.stride, lanes=lanes, eps=eps, weights=q.weights_desc,
               macs=layer.macs, wbuf_words=cfg.weight_buffer_words, fm_ways=fm_ways, fm_bytes=cfg.fm_bytes)
    for mode in ("sparse", "dense"):
        # the driver's plan for this engine's weight buffer, in each mode (dense mode streams every
        # operand, so its best plan can differ)
        pl = plan.plan(spec, lanes, cfg.weight_buffer_words, eps=eps, dense_mode=(mode == "dense"))
        transport = SimTransport(cfg, out_root / full / mode)
        t = time.perf_counter()
        got, r = plan.run_plan(spec, pl, transport, eps=eps, dense_mode=(mode == "dense"))
        wall = time.perf_counter() - t
        c = r["counters"]
        estimate = sum(predict(plan.sub_spec(spec, t), lanes, eps=eps, dense_mode=(mode == "dense"),
                               expected=want[t.k0:t.k1], weight_buffer=t.weight_buffer, fm_bytes=cfg.fm_bytes,
                               out_bytes=cfg.out_bytes, dw_walk=cfg.dw_walk, fm_ways=fm_ways)["cycles_estimate"]
                       for t in pl.tiles)
        row[mode] = dict(cycles=c["CYCLES"], cycles_estimate=estimate, bit_exact=bool(np.array_equal(got, want)), counters=c,
                         tiles=[dict(k0=t.k0, k1=t.k1, weight_buffer=t.weight_buffer) for t in pl.tiles],
                         plan_bytes_read=pl.bytes_read, wall_s=round(wall, 2),
                         sim_cycles_per_s=round(c["CYCLES"] / wall))
    nz = nonzero_macs(x, layer.weight.shape, layer.stride, layer.padding, layer.groups, eps)
    _, t_in = fmformat.encode(x, "compressed")
    _, t_out = fmformat.encode(want, "compressed")
    limit = t_in.total
    sp, dn = row["sparse"], row["dense"]
    row.update(
        nonzero_macs=nz,
        cycles_sparse_bound=math.ceil(nz / lanes), cycles_dense_bound=math.ceil(layer.macs / lanes),
        utilisation=round(math.ceil(nz / lanes) / sp["cycles"], 4),
        dense_utilisation=round(math.ceil(layer.macs / lanes) / dn["cycles"], 4),
        speedup=round(dn["cycles"] / sp["cycles"], 3),
        fm_bytes_tensor=int(x.size), fm_bytes_dense=fmformat.region_bytes(*x.shape, "dense"),
        fm_bytes_read=sp["counters"]["FM_VALUE_BYTES"] + sp["counters"]["FM_BITMAP_BYTES"],
        fm_port_bytes_read=sp["counters"]["FM_PORT_BYTES"],
        fm_bytes_limit=limit,
        weight_bytes=int(layer.weight.size), weight_bytes_read=sp["counters"]["WEIGHT_BYTES"],
        param_bytes_read=sp["counters"]["PARAM_BYTES"], out_bytes_written=sp["counters"]["OUT_BYTES"],
        # what the ports delivered: the feature-map port's whole beats
        bytes_read=sum(sp["counters"][n] for n in ("WEIGHT_BYTES", "PARAM_BYTES", "FM_PORT_BYTES")),
        bytes_read_ideal=int(layer.weight.size) + PARAM_BYTES * layer.weight.shape[0] + t_in.total,
        out_bytes_ideal=t_out.total,
        input_zero_fraction=round(float(np.mean(x == 0)), 4))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fmprune.sim.bench_engine", description=__doc__)
    ap.add_argument("layers", nargs="*", default=DEFAULT_LAYERS)
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--eps", type=int, default=0)
    ap.add_argument("--fm-ways", type=int, default=DEFAULT_FM_WAYS, choices=(1, 2),
                    help="the engine's loader ways (Engine's fm_ways)")
    ap.add_argument("--fm-bytes", type=int, default=DEFAULT_FM_BYTES, choices=PORT_BYTES,
                    help=f"bytes a beat of the feature-map port (Engine's fm_bytes; default {DEFAULT_FM_BYTES})")
    ap.add_argument("--out", default="build/bench/engine.json")
    args = ap.parse_args(argv)
    rows, qnets = [], {}
    hdr = f"{'layer':18s} {'kind':10s} {'cycles':>10s} {'sparse bd':>10s} {'util':>6s} {'dense cyc':>10s} " \
          f"{'dense util':>10s} {'speedup':>8s} {'fm read':>9s} {'fm port':>9s} {'fm limit':>9s} {'fm tensor':>9s} " \
          f"{'read':>10s} {'ideal':>10s} {'runs':>4s} {'rtl/model':>9s} exact"
    print(hdr)
    t = time.perf_counter()
    for full in args.layers:
        r = bench_layer(full, qnets, args.lanes, args.eps, Path("build/bench/engine"), args.fm_ways, args.fm_bytes)
        rows.append(r)
        print(f"{r['layer']:18s} {r['kind']:10s} {r['sparse']['cycles']:10d} {r['cycles_sparse_bound']:10d} "
              f"{r['utilisation']:6.3f} {r['dense']['cycles']:10d} {r['dense_utilisation']:10.3f} "
              f"{r['speedup']:8.2f} {r['fm_bytes_read']:9d} {r['fm_port_bytes_read']:9d} {r['fm_bytes_limit']:9d} "
              f"{r['fm_bytes_tensor']:9d} "
              f"{r['bytes_read']:10d} {r['bytes_read_ideal']:10d} {len(r['sparse']['tiles']):4d} "
              f"{r['sparse']['cycles'] / r['sparse']['cycles_estimate']:9.3f} "
              f"{r['sparse']['bit_exact'] and r['dense']['bit_exact']}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(rows=rows, wall_s=round(time.perf_counter() - t, 1)), indent=2) + "\n")
    print(f"weights: {rows[0]['weights'] if rows else '-'}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
