"""`fmprune run NET`: a whole network streamed through the simulated engine, layer by layer."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..sw import driver, fmformat, quant
from ..sw.data import load_image, preprocess
from ..sw.golden import QuantizedNetwork
from ..sw.zoo import INPUT_SIZE
from .runner import SimConfig, SimTransport


def run_network(net, *, image="china", weights=None, eps=0, lanes=16, simulator="verilator", out=None,
                echo=print) -> dict:
    t0 = time.perf_counter()
    q = QuantizedNetwork(net, weights)
    xq = q.quantize_input(preprocess(load_image(image), INPUT_SIZE)[None])
    golden_logits, _ = q.run_int(xq, eps)
    cfg = SimConfig(lanes=lanes, simulator=simulator)
    run_root = Path("build") / "run" / net
    engine_images: dict[int, tuple] = {}         # id of an engine output array -> (array, compressed image)
    rows = []
    n_layers = len(q.layers)

    def engine_conv(op, x, eps_):
        layer = q.layers[op.layer]
        full = f"{net}.{op.layer}"
        spec = driver.LayerSpec.from_qlayer(full, layer, np.ascontiguousarray(x[0]))
        job = driver.prepare(spec, lanes, eps=eps_)
        chained = id(x) in engine_images and engine_images[id(x)][0] is x
        if chained:                               # the previous layer's compressed output, as written
            job.fm_image = engine_images[id(x)][1]
        r = SimTransport(cfg, run_root / op.layer).execute(job)
        if r.get("timeout") or r.get("error"):
            raise RuntimeError(f"{full}: the engine stopped with error {r.get('error')} (timeout {r.get('timeout')})")
        y = driver.decode_output(job, r["out"])
        if layer.act.kind == "leaky":             # the slope on the host, after the engine's clamp
            y = np.where(y < 0, quant.mbqm(y, layer.act.neg_multiplier, layer.act.neg_shift), y).astype(np.int8)
        want = layer.forward(x[0], eps_)
        c = r["counters"]
        nz = int(c["MACS"])
        _, traffic = fmformat.encode(spec.input, "compressed")
        rows.append(dict(layer=full, kind=layer.kind, cycles=c["CYCLES"], macs=layer.macs, nonzero_macs=nz,
                         utilisation=round(math.ceil(nz / lanes) / max(1, c["CYCLES"]), 4),
                         fm_bytes_read=c["FM_VALUE_BYTES"] + c["FM_BITMAP_BYTES"],
                         fm_bytes_dense=fmformat.region_bytes(*spec.input.shape, "dense"),
                         fm_bytes_limit=traffic.total, chained_input=chained,
                         bit_exact=bool(np.array_equal(y, want)), wall_s=round(r["wall_s"], 2)))
        row = rows[-1]
        total = sum(rw["cycles"] for rw in rows)
        echo(f"[{len(rows):3d}/{n_layers}] {full:22s} {row['kind']:9s} cycles {row['cycles']:>11,}  "
             f"util {row['utilisation']:.3f}  fm {row['fm_bytes_read']:>9,}/{row['fm_bytes_dense']:>9,} B  "
             f"{'exact' if row['bit_exact'] else 'MISMATCH'}  | total {total:,} cycles, "
             f"{time.perf_counter() - t0:.0f} s", flush=True)
        out_img = bytes(r["out"])
        y = np.ascontiguousarray(y[None])
        if layer.act.kind != "leaky":
            engine_images[id(y)] = (y, out_img)
        return y

    rtl_logits, _ = q.run_int(xq, eps, conv=engine_conv)
    top_rtl = np.argsort(-rtl_logits[0].astype(np.int16), kind="stable")[:5].tolist()
    top_gold = np.argsort(-golden_logits[0].astype(np.int16), kind="stable")[:5].tolist()
    result = dict(network=net, image=image, eps=eps, lanes=lanes, simulator=simulator, weights=q.weights_desc,
                  top5_rtl=top_rtl, top5_golden=top_gold, top5_identical=top_rtl == top_gold,
                  logits_identical=bool(np.array_equal(rtl_logits, golden_logits)),
                  bit_exact=all(r["bit_exact"] for r in rows), layers=rows,
                  total_cycles=sum(r["cycles"] for r in rows),
                  fm_bytes_read=sum(r["fm_bytes_read"] for r in rows),
                  fm_bytes_dense=sum(r["fm_bytes_dense"] for r in rows), wall_s=round(time.perf_counter() - t0, 1))
    path = Path(out) if out else Path("build") / "run" / f"{net}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    saved = 1 - result["fm_bytes_read"] / max(1, result["fm_bytes_dense"])
    echo(f"top-5 RTL    {top_rtl}")
    echo(f"top-5 golden {top_gold}  -> {'identical' if result['top5_identical'] else 'DIFFERENT'}")
    echo(f"{len(rows)} layers, {result['total_cycles']:,} cycles at P={lanes}; feature-map bytes read "
         f"{result['fm_bytes_read']:,} of {result['fm_bytes_dense']:,} dense ({saved:.1%} saved); "
         f"{'bit-exact' if result['bit_exact'] else 'NOT bit-exact'}; {result['wall_s']} s")
    echo(f"weights: {q.weights_desc}")
    echo(f"wrote {path}")
    return result
