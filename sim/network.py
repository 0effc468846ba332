"""`fmprune run NET`: a whole network streamed through the simulated engine, layer by layer."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..sw import driver, fmformat, plan, quant, tiling
from ..sw.data import load_image, preprocess
from ..sw.golden import QuantizedNetwork
from ..sw.layout import DEFAULT_FM_BYTES, DEFAULT_FM_WAYS, DEFAULT_OUT_BYTES
from ..sw.zoo import INPUT_SIZE
from .runner import SimConfig, SimTransport


def layer_row(name, layer, spec, c, lanes, *, eps, want, got, tiles, chained, wall_s, fm_bytes=DEFAULT_FM_BYTES,
              out_bytes=DEFAULT_OUT_BYTES, dw_walk=True, fm_ways=DEFAULT_FM_WAYS) -> dict:
    """One layer's figures (build/run/NET.json's `layers`): the engine's counters summed over its
    runs, the bound ceil(non-zero MACs / P), and the bytes read beside the ideal (the weight
    tensor, the parameters once, the compressed input and output). `bytes_read` counts what the
    ports delivered (the feature-map port's whole beats, `fm_port_bytes_read`); `fm_bytes_read`
    the records' bytes (the compressed limit). Feature-map baselines: the unpadded C x H x W
    tensor (`fm_bytes_tensor`) and the padded 8-channel dense layout."""
    from ..sw.layout import PARAM_BYTES
    nz = int(c["MACS"])
    bound = math.ceil(nz / lanes)
    _, t_in = fmformat.encode(spec.input, "compressed")
    _, t_out = fmformat.encode(want, "compressed")
    weight_tensor = int(spec.weight.size)
    read = {n: int(c[n]) for n in ("WEIGHT_BYTES", "PARAM_BYTES")}
    fm = int(c["FM_VALUE_BYTES"] + c["FM_BITMAP_BYTES"])
    fm_port = int(c["FM_PORT_BYTES"])
    ideal_read = weight_tensor + PARAM_BYTES * spec.weight.shape[0] + t_in.total
    # the engine's model, run by run
    from ..hw.model import predict
    expected = want if layer.act.kind != "leaky" else got
    runs = [(plan.sub_spec(spec, t), t.weight_buffer, expected[t.k0:t.k1]) for t in tiles] if tiles else \
        [(spec, False, expected)]
    models = [predict(sub, lanes, eps=eps, expected=e, weight_buffer=wb, fm_bytes=fm_bytes, out_bytes=out_bytes,
                      dw_walk=dw_walk, fm_ways=fm_ways) for sub, wb, e in runs]
    model = {n: sum(mo[n] for mo in models) for n in ("FM_VALUE_BYTES", "FM_BITMAP_BYTES", "MACS", "cycles_estimate")}
    return dict(layer=name, kind=layer.kind, stride=spec.stride, cycles=int(c["CYCLES"]), bound=bound,
                macs=layer.macs, nonzero_macs=nz, utilisation=round(bound / max(1, c["CYCLES"]), 4),
                weight_bytes_read=read["WEIGHT_BYTES"], param_bytes_read=read["PARAM_BYTES"], fm_bytes_read=fm,
                fm_port_bytes_read=fm_port, out_bytes_written=int(c["OUT_BYTES"]), weight_bytes=weight_tensor,
                bytes_read=read["WEIGHT_BYTES"] + read["PARAM_BYTES"] + fm_port, bytes_read_ideal=ideal_read,
                out_bytes_ideal=t_out.total, fm_bytes_limit=t_in.total,
                fm_bytes_tensor=int(spec.input.size), fm_bytes_dense=fmformat.region_bytes(*spec.input.shape, "dense"),
                chained_input=chained, bit_exact=bool(np.array_equal(got, want)),
                model_fm_bytes=model["FM_VALUE_BYTES"] + model["FM_BITMAP_BYTES"], model_macs=model["MACS"],
                cycles_estimate=model["cycles_estimate"],
                tiles=len(tiles) if tiles else 1,
                weight_buffer_runs=sum(t.weight_buffer for t in tiles) if tiles else 0, wall_s=round(wall_s, 2))


def stream(q, xq, *, eps=0, lanes=16, simulator="verilator", run_root=None, echo=print, t0=None, board=None,
           wbuf_words=None, fm_bytes=DEFAULT_FM_BYTES, out_bytes=DEFAULT_OUT_BYTES, dw_walk=True,
           fm_ways=DEFAULT_FM_WAYS):
    """Run the quantised network `q` on int8 input `xq` (1 x C x H x W) with every conv / fc layer
    on the simulated engine, or, with `board` = (transport, tiling.Limits), on that engine tile by
    tile (a board's memories hold one tile, not one layer). Returns (logits, per-layer rows).
    `fm_bytes`, `out_bytes`, `dw_walk`, `fm_ways`: the engine's generation parameters (a board's INFO
    reply)."""
    t0 = time.perf_counter() if t0 is None else t0
    cfg = SimConfig(lanes=lanes, simulator=simulator, wbuf_words=wbuf_words, fm_bytes=fm_bytes, out_bytes=out_bytes,
                    dw_walk=dw_walk, fm_ways=fm_ways)
    run_root = Path(run_root) if run_root else Path("build") / "run" / q.net
    net = q.net
    engine_images: dict[int, tuple] = {}         # id of an engine output array -> (array, compressed image)
    rows = []
    n_layers = len(q.layers)

    def engine_conv(op, x, eps_):
        layer = q.layers[op.layer]
        full = f"{net}.{op.layer}"
        spec = driver.LayerSpec.from_qlayer(full, layer, np.ascontiguousarray(x[0]))
        t_layer = time.perf_counter()
        if board:
            y, r = tiling.run_tiled(spec, board[0], board[1], eps=eps_)
            chained, tiles = False, None
        else:
            chained = id(x) in engine_images and engine_images[id(x)][0] is x
            pl = plan.plan(spec, lanes, cfg.weight_buffer_words, eps=eps_)
            # the previous layer's compressed output, as written, is this layer's input image
            y, r = plan.run_plan(spec, pl, SimTransport(cfg, run_root / op.layer), eps=eps_,
                                 fm_image=engine_images[id(x)][1] if chained else None)
            tiles = pl.tiles
        if layer.act.kind == "leaky":             # the slope on the host, after the engine's clamp
            y = np.where(y < 0, quant.mbqm(y, layer.act.neg_multiplier, layer.act.neg_shift), y).astype(np.int8)
        want = layer.forward(x[0], eps_)
        c = r["counters"]
        rows.append(layer_row(full, layer, spec, c, lanes, eps=eps_, want=want, got=y, tiles=tiles, chained=chained,
                              wall_s=time.perf_counter() - t_layer, fm_bytes=cfg.fm_bytes, out_bytes=cfg.out_bytes,
                              dw_walk=cfg.dw_walk, fm_ways=cfg.fm_ways))
        row = rows[-1]
        total = sum(rw["cycles"] for rw in rows)
        echo(f"[{len(rows):3d}/{n_layers}] {full:22s} {row['kind']:9s} cycles {row['cycles']:>11,}  "
             f"util {row['utilisation']:.3f}  read {row['bytes_read']:>10,} B ({row['bytes_read'] / row['bytes_read_ideal']:.2f}"
             f" x ideal, {row['tiles']} run{'s' if row['tiles'] > 1 else ''})  "
             f"{'exact' if row['bit_exact'] else 'MISMATCH'}  | total {total:,} cycles, "
             f"{time.perf_counter() - t0:.0f} s", flush=True)
        y = np.ascontiguousarray(y[None])
        if layer.act.kind != "leaky" and not board:
            engine_images[id(y)] = (y, r["out"])
        return y

    logits, _ = q.run_int(xq, eps, conv=engine_conv)
    return logits, rows


def run_network(net, *, image="china", weights=None, eps=0, lanes=16, simulator="verilator", out=None,
                echo=print, port=None, baud=None, wbuf_words=None, fm_bytes=DEFAULT_FM_BYTES,
                out_bytes=DEFAULT_OUT_BYTES, fm_ways=DEFAULT_FM_WAYS) -> dict:
    """`port`: run on the board on that serial port instead of the simulator (whose INFO reply then
    gives the engine's generation parameters)."""
    t0 = time.perf_counter()
    board = None
    dw_walk = True
    if port:
        from ..boards.host import SerialTransport
        transport = SerialTransport(port, lanes, baud=baud or 1_000_000)
        if not transport.low_latency:
            echo(f"note: {port} has no low-latency mode here: each request / reply may wait for the USB "
                 f"adapter's latency timer (16 ms on FTDI chips by default; docs/boards.md)")
        info = transport.info()
        if info["lanes"] != lanes:
            raise ValueError(f"the board on {port} has P={info['lanes']} lanes: pass --lanes {info['lanes']}")
        board = (transport, tiling.Limits.from_info(info))
        # the cycle estimates are for the board's engine
        fm_bytes, out_bytes, dw_walk = info["fm_beat_bytes"], info["out_beat_bytes"], bool(info["dw_walk"])
        fm_ways = info["fm_ways"]
        simulator = f"board on {port} ({info['clk_hz'] / 1e6:g} MHz, {info['baud']:,} baud)"
    q = QuantizedNetwork(net, weights)
    xq = q.quantize_input(preprocess(load_image(image), INPUT_SIZE)[None])
    golden_logits, _ = q.run_int(xq, eps)
    rtl_logits, rows = stream(q, xq, eps=eps, lanes=lanes, simulator=simulator, echo=echo, t0=t0, board=board,
                              wbuf_words=wbuf_words, fm_bytes=fm_bytes, out_bytes=out_bytes, dw_walk=dw_walk,
                              fm_ways=fm_ways)
    top_rtl = np.argsort(-rtl_logits[0].astype(np.int16), kind="stable")[:5].tolist()
    top_gold = np.argsort(-golden_logits[0].astype(np.int16), kind="stable")[:5].tolist()
    result = dict(network=net, image=image, eps=eps, lanes=lanes, simulator=simulator, weights=q.weights_desc,
                  top5_rtl=top_rtl, top5_golden=top_gold, top5_identical=top_rtl == top_gold,
                  logits_identical=bool(np.array_equal(rtl_logits, golden_logits)),
                  bit_exact=all(r["bit_exact"] for r in rows), layers=rows,
                  total_cycles=sum(r["cycles"] for r in rows), total_bound=sum(r["bound"] for r in rows),
                  bytes_read=sum(r["bytes_read"] for r in rows),
                  bytes_read_ideal=sum(r["bytes_read_ideal"] for r in rows),
                  weight_bytes_read=sum(r["weight_bytes_read"] for r in rows),
                  weight_bytes=sum(r["weight_bytes"] for r in rows),
                  fm_bytes_read=sum(r["fm_bytes_read"] for r in rows),
                  fm_port_bytes_read=sum(r["fm_port_bytes_read"] for r in rows),
                  fm_bytes_tensor=sum(r["fm_bytes_tensor"] for r in rows),
                  fm_bytes_dense=sum(r["fm_bytes_dense"] for r in rows), wall_s=round(time.perf_counter() - t0, 1))
    path = Path(out) if out else Path("build") / "run" / f"{net}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    saved = 1 - result["fm_bytes_read"] / max(1, result["fm_bytes_tensor"])
    echo(f"top-5 RTL    {top_rtl}")
    echo(f"top-5 golden {top_gold}  -> {'identical' if result['top5_identical'] else 'DIFFERENT'}")
    echo(f"{len(rows)} layers, {result['total_cycles']:,} cycles at P={lanes} (bound {result['total_bound']:,}: "
         f"{result['total_bound'] / max(1, result['total_cycles']):.3f}); bytes read {result['bytes_read']:,} = "
         f"{result['bytes_read'] / max(1, result['bytes_read_ideal']):.2f} x the ideal {result['bytes_read_ideal']:,} "
         f"(weights {result['weight_bytes_read']:,} of a {result['weight_bytes']:,}-byte tensor)")
    echo(f"feature-map bytes read {result['fm_bytes_read']:,} of the {result['fm_bytes_tensor']:,}-byte unpadded "
         f"tensors ({saved:.1%} saved; {result['fm_port_bytes_read']:,} in the port's whole beats); "
         f"{'bit-exact' if result['bit_exact'] else 'NOT bit-exact'}; {result['wall_s']} s")
    echo(f"weights: {q.weights_desc}")
    echo(f"wrote {path}")
    return result


def hardware_check(eps: int, n_images: int = 5, *, lanes=16, simulator="verilator", echo=print, model=None,
                   desc=None, out: Path | None = None, images=None, net: str | None = None) -> dict:
    """The trained digit network (or `model`, a DigitNet, e.g. a pruned one) on `n_images`
    held-out images through the simulated engine at `eps`: predictions against the golden model,
    measured bytes / MACs / cycles against the model. `images` = (calibration x, test x, test y)
    for a network trained on other data (default the digits). Writes `out` (default
    build/sweep/hardware.json)."""
    from ..sw import train
    if model is None:
        model, desc = train.load()
    if images is None:
        xcal, _, xte, yte = train.digits()
    else:
        xcal, xte, yte = images
    q = train.quantise(model, desc, calib=xcal, net=net)
    xq = q.quantize_input(xte[:n_images])
    golden_logits, _ = q.run_int(xq, eps)
    preds, all_rows = [], []
    for i in range(n_images):
        logits, rows = stream(q, xq[i:i + 1], eps=eps, lanes=lanes, simulator=simulator,
                              run_root=Path("build") / "run" / q.net, echo=lambda *a, **k: None)
        preds.append(int(logits[0].argmax()))
        all_rows += rows
        echo(f"image {i}: label {int(yte[i])}, RTL {preds[-1]}, golden {int(golden_logits[i].argmax())}, "
             f"{sum(r['cycles'] for r in rows):,} cycles, {'bit-exact' if all(r['bit_exact'] for r in rows) else 'MISMATCH'}")
    tot = {k: sum(r[k] for r in all_rows) for k in ("cycles", "cycles_estimate", "fm_bytes_read", "model_fm_bytes",
                                                     "nonzero_macs", "model_macs", "bytes_read", "weight_bytes_read")}
    result = dict(eps=eps, images=n_images, weights=desc, rtl_predictions=preds,
                  golden_predictions=[int(v) for v in golden_logits.argmax(1)],
                  labels=[int(v) for v in yte[:n_images]], bit_exact=all(r["bit_exact"] for r in all_rows), **tot,
                  fm_bytes_error=tot["fm_bytes_read"] / tot["model_fm_bytes"] - 1,
                  macs_error=tot["nonzero_macs"] / tot["model_macs"] - 1,
                  cycles_vs_estimate=tot["cycles"] / tot["cycles_estimate"])
    result["predictions_identical"] = result["rtl_predictions"] == result["golden_predictions"]
    echo(f"predictions identical to the golden model: {result['predictions_identical']}; feature-map bytes "
         f"{tot['fm_bytes_read']:,} vs estimate {tot['model_fm_bytes']:,} ({result['fm_bytes_error']:+.2%}); MACs "
         f"{tot['nonzero_macs']:,} vs {tot['model_macs']:,} ({result['macs_error']:+.2%}); cycles {tot['cycles']:,} "
         f"= {result['cycles_vs_estimate']:.2f} x the cycle model's estimate")
    out = Path("build") / "sweep" / "hardware.json" if out is None else Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    echo(f"wrote {out}")
    return result


def prune_hardware(result: dict, n_images: int, *, lanes=16, simulator="verilator", echo=print) -> dict:
    """`fmprune prune --hardware N`: the unpruned network and each pruned one (sw/prune.run's
    `result`) stream N held-out images through the simulated engine (value-level skipping on, as
    always): cycles, bytes read, bit-exactness, added to the result and its report."""
    from ..sw import train
    xtr, _, xte, yte, _, _, _ = train.dataset(result["data_dir"])
    base = Path(result["report"])
    nets = [("unpruned", *train.load(result["checkpoint"]))] + [
        (m, *train.load(Path(r["checkpoint"]))) for m, r in result["methods"].items()]
    for name, model, desc in nets:
        echo(f"{name}: {n_images} held-out images through the simulated engine")
        h = hardware_check(0, n_images, lanes=lanes, simulator=simulator, model=model, desc=desc, echo=echo,
                           images=(xtr, xte, yte), net=result["network"],
                           out=base.with_name(f"{base.stem}-{name}-hardware.json"))
        row = result["unpruned"] if name == "unpruned" else result["methods"][name]
        row["hardware"] = {k: h[k] for k in ("images", "bit_exact", "predictions_identical", "cycles",
                                             "bytes_read", "weight_bytes_read", "fm_bytes_read", "nonzero_macs")}
    base.write_text(json.dumps(result, indent=2) + "\n")
    return result
