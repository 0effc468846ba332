"""`make regress`: every convolution of MobileNet and one layer of each other network through the
RTL on Verilator, whole layers, with a summary table (build/regress/summary.json and .md)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..sw.golden import layer_table
from .layer import simulate_layer

OTHERS = ["alexnet.conv5", "vgg16.conv13", "resnet50.conv2", "squeezenet.conv2", "squeezenet1_1.conv3",
          "tinynet.conv16", "mobilenetv2.conv2", "mobilenetv2.fc1"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    simulator = argv[0] if argv else "verilator"
    layers = [r["name"] for r in layer_table("mobilenet")] + OTHERS
    rows, t0 = [], time.perf_counter()
    for name in layers:
        r = simulate_layer(name, simulator=simulator, lanes=16, out_dir=Path("build") / "regress" / name,
                           echo=lambda *a, **k: None)
        rows.append({k: r[k] for k in ("layer", "cycles", "utilisation", "fm_bytes_read", "fm_bytes_limit",
                                       "fm_bytes_dense", "mismatches", "bit_exact", "wall_s")})
        print(f"{name:22s} {r['cycles']:>12,} cycles  util {r['utilisation']:.3f}  fm {r['fm_bytes_read']:>9,} "
              f"(limit {r['fm_bytes_limit']:>9,})  {'exact' if r['bit_exact'] else 'MISMATCH'}  {r['wall_s']} s",
              flush=True)
    out = Path("build") / "regress"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(dict(simulator=simulator, rows=rows,
                                                      wall_s=round(time.perf_counter() - t0, 1)), indent=2) + "\n")
    md = ["| layer | cycles | utilisation | fm bytes read | limit | dense | bit-exact |", "|---|---:|---:|---:|---:|---:|---|"]
    md += [f"| {r['layer']} | {r['cycles']:,} | {r['utilisation']:.3f} | {r['fm_bytes_read']:,} | "
           f"{r['fm_bytes_limit']:,} | {r['fm_bytes_dense']:,} | {r['bit_exact']} |" for r in rows]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    bad = [r["layer"] for r in rows if not r["bit_exact"]]
    print(f"{len(rows) - len(bad)} of {len(rows)} layers bit-exact; wrote {out}/summary.json and summary.md")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
