"""`fmprune sim LAYER`: one layer through the RTL, compared value by value with the golden model,
with a report beside the golden files."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..sw import driver, fmformat, plan
from ..sw.analyze import nonzero_macs
from ..sw.golden import export_layer
from ..sw.layout import DEFAULT_FM_BYTES, DEFAULT_FM_WAYS, DEFAULT_OUT_BYTES
from .runner import SimConfig, SimTransport


def simulate_layer(layer: str, *, simulator="verilator", lanes=16, eps=0, dense=False, waves=False, weights=None,
                   crop=None, stall=0, out_dir=None, budget=200_000_000, echo=print, wbuf_words=None,
                   fm_bytes=DEFAULT_FM_BYTES, out_bytes=DEFAULT_OUT_BYTES, fm_ways=DEFAULT_FM_WAYS) -> dict:
    out = Path(out_dir) if out_dir else Path("build") / "sim" / layer
    t0 = time.perf_counter()
    meta = export_layer(layer, out, eps=eps, weights=weights)
    spec = driver.LayerSpec.from_files(out)
    if crop:
        spec = spec.crop(crop)
    want = spec.golden(eps)
    if not crop:
        assert np.array_equal(want, np.load(out / "expected.npy")), "golden files disagree with the spec"
    cfg = SimConfig(lanes=lanes, simulator=simulator, waves=waves, wbuf_words=wbuf_words, fm_bytes=fm_bytes,
                    out_bytes=out_bytes, fm_ways=fm_ways)
    transport = SimTransport(cfg, out / f"run-{simulator}-P{lanes}", stall_percent=stall, budget=budget)
    # the driver's plan for the engine's weight buffer: one run, or several (output-channel tiles)
    pl = plan.plan(spec, lanes, cfg.weight_buffer_words, eps=eps, dense_mode=dense)
    got, r = plan.run_plan(spec, pl, transport, eps=eps, dense_mode=dense)
    np.save(out / "output.npy", got)
    c = r["counters"]
    mem = {n: sum(run["memory"][n] for run in r["runs"]) for n in r["runs"][0]["memory"]}
    build_s = sum(run["build_s"] for run in r["runs"])
    sim_cycles, sim_wall = (sum(run[n] for run in r["runs"]) for n in ("sim_cycles", "wall_s"))
    diff = np.argwhere(got != want)
    x = spec.input
    macs = int(np.prod(spec.out_shape)) * int(np.prod(spec.weight.shape[1:]))
    nz = nonzero_macs(x, spec.weight.shape, spec.stride, spec.padding, x.shape[0] if spec.depthwise else 1, eps)
    _, traffic = fmformat.encode(x, "compressed")
    agree = dict(fm=c["FM_PORT_BYTES"] == mem["fm_port_bytes"],
                 weights=c["WEIGHT_BYTES"] + c["PARAM_BYTES"] == mem["w_reads"] * lanes,
                 out=c["OUT_BYTES"] == mem["out_bytes"], oob=mem["oob"] == 0)
    report = dict(
        layer=layer if not crop else spec.name, simulator=simulator, lanes=lanes, eps=eps, dense_mode=dense,
        weights=meta["weights"], macs=macs, nonzero_macs=nz, cycles=c["CYCLES"],
        runs=[dict(k0=t.k0, k1=t.k1, weight_buffer=t.weight_buffer) for t in pl.tiles],
        weight_bytes=int(spec.weight.size), weight_bytes_read=c["WEIGHT_BYTES"], param_bytes_read=c["PARAM_BYTES"],
        cycles_sparse_bound=math.ceil(nz / lanes), cycles_dense_bound=math.ceil(macs / lanes),
        utilisation=round(math.ceil((macs if dense else nz) / lanes) / max(1, c["CYCLES"]), 4),
        fm_bytes_tensor=int(x.size), fm_bytes_dense=fmformat.region_bytes(*x.shape, "dense"),
        fm_bytes_read=c["FM_VALUE_BYTES"] + c["FM_BITMAP_BYTES"], fm_bytes_limit=traffic.total,
        values_skipped=c["VALUES_SKIPPED"], mismatches=int(len(diff)), bit_exact=bool(len(diff) == 0),
        wall_s=round(time.perf_counter() - t0, 2), build_s=round(build_s, 2),
        sim_cycles_per_s=round(sim_cycles / sim_wall) if sim_wall else None,
        counters=c, memory_counts=mem, counters_agree_with_memories=all(agree.values()),
        waves=r["runs"][-1].get("waves"))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    echo(f"{report['layer']} on {simulator}, P={lanes}, eps={eps}{', dense mode' if dense else ''}: "
         f"{'BIT-EXACT' if report['bit_exact'] else f'{len(diff)} MISMATCHES'}")
    echo(f"  cycles {c['CYCLES']:,} (sparse bound {report['cycles_sparse_bound']:,}, dense bound "
         f"{report['cycles_dense_bound']:,}), utilisation {report['utilisation']:.3f}")
    echo(f"  feature-map bytes read {report['fm_bytes_read']:,} (limit {report['fm_bytes_limit']:,}, unpadded tensor "
         f"{report['fm_bytes_tensor']:,}); values skipped {c['VALUES_SKIPPED']:,}; MACs issued {c['MACS']:,}")
    echo(f"  weight bytes read {c['WEIGHT_BYTES']:,} (the tensor: {report['weight_bytes']:,}) in {len(pl.tiles)} "
         f"run{'s' if len(pl.tiles) > 1 else ''}, {sum(t.weight_buffer for t in pl.tiles)} through the weight buffer")
    echo(f"  counters agree with the memories' own counts: {report['counters_agree_with_memories']}")
    echo(f"  wall {report['wall_s']} s (build {report['build_s']} s), {report['sim_cycles_per_s']:,} simulated cycles/s")
    echo(f"  weights: {meta['weights']}")
    for idx in diff[:10]:
        k, yy, xx = map(int, idx)
        echo(f"  mismatch at (k={k}, y={yy}, x={xx}): RTL {int(got[k, yy, xx])} expected {int(want[k, yy, xx])}")
    if report["waves"]:
        echo(f"  waveform: {report['waves']}")
    echo(f"  wrote {out}/report.json and output.npy")
    return report
