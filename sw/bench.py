"""Benchmark of the integer golden model: seconds per image for each network (figures, no
asserts). `python -m fmprune.sw.bench [NET ...]`; writes build/bench/golden.json."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data import calibration_batch
from .golden import QuantizedNetwork, run_float
from .zoo import NETWORKS


def main(argv=None) -> int:
    nets = (argv if argv is not None else sys.argv[1:]) or list(NETWORKS)
    calib = calibration_batch()
    photos = calib[[0, 10]]
    rows = []
    print(f"{'network':14s} {'build s':>8s} {'int s/img':>10s} {'float top1':>12s} {'int top1':>10s}")
    for net in nets:
        t = time.perf_counter()
        q = QuantizedNetwork(net, calib_images=calib)
        build = time.perf_counter() - t
        xq = q.quantize_input(photos)
        q.run_int(xq[:1])                              # warm-up
        t = time.perf_counter()
        for i in range(2):
            yi, _ = q.run_int(xq[i:i + 1])
        per_img = (time.perf_counter() - t) / 2
        yi, _ = q.run_int(xq)
        fl = run_float(q.ops, photos)[q.ops[-1].name].numpy()
        rows.append(dict(network=net, build_s=round(build, 3), int_s_per_image=round(per_img, 4),
                         float_top1=fl.argmax(1).tolist(), int_top1=yi.argmax(1).tolist(),
                         logit_rel_rms_error=float(np.std(yi * q.output_scale() - fl) / np.std(fl)),
                         threads=torch.get_num_threads(), weights=q.weights_desc))
        r = rows[-1]
        print(f"{net:14s} {build:8.2f} {per_img:10.3f} {str(r['float_top1']):>12s} {str(r['int_top1']):>10s}",
              flush=True)
    out = Path("build/bench/golden.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
