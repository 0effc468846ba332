"""The serial link's budget for a whole network on a board (figures, no asserts): every conv / fc
layer of NET on a photograph, tiled for the board's memories as `fmprune run NET --port` tiles it,
and the bytes each tile's session moves (boards/host.link_bytes: feature map, weights, registers
and counters, output), against sending each compressed feature map's whole region. The time is
at the board's baud rate, 10 bits a byte, and separately the exchanges' latency; the engine's own
time is not in it.
`python -m fmprune.sim.link_budget [NET] [--board ulx3s]`; writes build/bench/link_NET_BOARD.json."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..boards import protocol
from ..boards.host import CHUNK, link_bytes
from ..boards.top import BOARDS, board_config
from ..sw import driver, tiling
from ..sw.data import load_image, preprocess
from ..sw.golden import QuantizedNetwork
from ..sw.zoo import INPUT_SIZE, NETWORKS

PARTS = ("fm", "weights", "registers", "out")
LATENCY_S = {"low-latency": 0.001, "default": 0.016}     # an FTDI adapter's latency timer


def whole_region_fm(job) -> int:
    """Feature-map bytes of a session that sends the whole image (as the host did before it sent
    only fmformat.read_ranges)."""
    n = len(job.fm_image)
    return sum(len(protocol.write_mem(0, at, b"")) + min(CHUNK, n - at) + 1 for at in range(0, n, CHUNK))


def budget(net: str, board: str = "ulx3s", image: str = "china", baud: int | None = None, echo=print) -> dict:
    _, cfg = board_config(board, baud=baud)            # a --baud the board's clock cannot make is refused
    lim = tiling.Limits.from_info(cfg.info())
    q = QuantizedNetwork(net)
    xq = q.quantize_input(preprocess(load_image(image), INPUT_SIZE)[None])
    rows = []

    def conv(op, x, eps):
        layer = q.layers[op.layer]
        spec = driver.LayerSpec.from_qlayer(f"{net}.{op.layer}", layer, np.ascontiguousarray(x[0]))
        row = dict(layer=spec.name, tiles=0, whole_region_fm=0, **{p: 0 for p in PARTS}, total=0, exchanges=0)
        for *_, sub in tiling.tiles(spec, lim):
            job = driver.prepare(sub, cfg.lanes)
            b = link_bytes(job, cfg.lanes)
            row["tiles"] += 1
            row["whole_region_fm"] += whole_region_fm(job)
            for p in PARTS + ("total", "exchanges"):
                row[p] += b[p]
        rows.append(row)
        echo(f"{row['layer']:22s} {row['tiles']:4d} tiles  fm {row['fm']:>11,} (whole regions "
             f"{row['whole_region_fm']:>11,})  weights {row['weights']:>11,}  out {row['out']:>11,}  "
             f"total {row['total']:>12,} B")
        return layer.forward(x, eps)

    t0 = time.perf_counter()
    q.run_int(xq, 0, conv=conv)
    total = {p: sum(r[p] for r in rows) for p in PARTS + ("total", "whole_region_fm", "tiles", "exchanges")}
    before = total["total"] - total["fm"] + total["whole_region_fm"]
    seconds = total["total"] * 10 / cfg.baud
    result = dict(network=net, board=board, image=image, lanes=cfg.lanes, baud=cfg.baud, layers=rows,
                  totals=total, link_s=round(seconds, 1),
                  latency_s={k: round(total["exchanges"] * v, 1) for k, v in LATENCY_S.items()},
                  whole_regions_total=before,
                  whole_regions_link_s=round(before * 10 / cfg.baud, 1), wall_s=round(time.perf_counter() - t0, 1))
    echo(f"{net} on the {BOARDS[board].title}: {total['tiles']} tiles, {total['total']:,} bytes over the link "
         f"(feature maps {total['fm']:,}, weights {total['weights']:,}, output {total['out']:,}, registers "
         f"{total['registers']:,}): {seconds:.0f} s at {cfg.baud:,} baud; sending whole feature-map regions: "
         f"{before:,} bytes, {before * 10 / cfg.baud:.0f} s")
    echo(f"and {total['exchanges']:,} request / reply exchanges (status polls not counted), each waiting "
         f"for the USB adapter's latency timer: {result['latency_s']['low-latency']:.0f} s more at 1 ms "
         f"(low-latency mode, which fmprune asks for on Linux), {result['latency_s']['default']:.0f} s at "
         f"the FTDI default 16 ms")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fmprune.sim.link_budget", description=__doc__.split("\n")[0])
    ap.add_argument("net", nargs="?", default="mobilenet", choices=list(NETWORKS))
    ap.add_argument("--board", default="ulx3s", choices=list(BOARDS))
    ap.add_argument("--image", default="china")
    ap.add_argument("--baud", type=int, default=None, help="the link's baud rate (default: the board's)")
    ap.add_argument("--out", default=None, help="JSON path (default build/bench/link_NET_BOARD.json)")
    a = ap.parse_args(argv)
    try:
        res = budget(a.net, a.board, a.image, a.baud)
    except ValueError as e:
        print(f"link_budget: error: {e}")
        return 2
    out = Path(a.out or f"build/bench/link_{a.net}_{a.board}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
