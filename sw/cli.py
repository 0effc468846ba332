"""fmprune's command line."""
from __future__ import annotations

import argparse
import json
import sys

from . import zoo

EPILOG = """examples:
  fmprune layers mobilenet
  fmprune golden mobilenet.conv3 --out build/golden/mobilenet.conv3
  fmprune golden vgg16.conv5 --eps 2 --weights vgg16-397923af.pth
"""


def _int_range(lo, hi):
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is outside {lo}..{hi}")
        return v
    return parse


def cmd_layers(args) -> int:
    from .golden import layer_table
    rows = layer_table(args.net)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    hdr = ("name", "kind", "input", "output", "k", "s", "p", "groups", "act", "MACs", "weight B")
    table = [hdr] + [(r["name"], r["kind"], "x".join(map(str, r["input"])), "x".join(map(str, r["output"])),
                      str(r["kernel"]), str(r["stride"]), str(r["padding"]), str(r["groups"]),
                      r["activation"], f"{r['macs']:,}", f"{r['weight_bytes']:,}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(hdr))]
    right = {4, 5, 6, 7, 9, 10}
    for row in table:
        print("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    print(f"{len(rows)} layers, {sum(r['macs'] for r in rows):,} MACs, "
          f"{sum(r['weight_bytes'] for r in rows):,} weight bytes (int8)")
    return 0


def cmd_golden(args) -> int:
    from pathlib import Path
    from .golden import export_layer
    out = Path(args.out) if args.out else Path("build") / "golden" / args.layer
    meta = export_layer(args.layer, out, eps=args.eps, weights=args.weights, image=args.image)
    print(f"{meta['layer']}: {meta['kind']} {'x'.join(map(str, meta['input_shape']))} -> "
          f"{'x'.join(map(str, meta['output_shape']))}, k{meta['kernel']} s{meta['stride']} "
          f"p{meta['padding']} groups {meta['groups']}, {meta['activation']}, eps {meta['eps']}")
    print(f"input zero {meta['input_zero_fraction']:.1%}, pruned at eps {meta['eps']}: "
          f"{meta['input_pruned_fraction']:.1%}; image {meta['image']}")
    print(f"weights: {meta['weights']}")
    print(f"wrote {out}/{{input,weight,bias,multiplier,shift,expected}}.npy and meta.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fmprune",
        description="Dynamic runtime feature-map pruning in hardware: model zoo, bit-exact "
                    "int8 golden model and layer test vectors for the fmprune engine.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    s = sub.add_parser("layers", help="list every convolution and fully-connected layer of a network",
                       description="List every convolution / fc layer of NET in execution order: name "
                                   "(NET.convN, NET.fcN), kind, input and output shape (CxHxW), kernel, "
                                   "stride, padding, groups, fused activation, MACs and int8 weight bytes.")
    s.add_argument("net", metavar="NET", help=f"network: {', '.join(zoo.NETWORKS)}")
    s.add_argument("--json", action="store_true", help="print the table as JSON")
    s.set_defaults(func=cmd_layers)

    s = sub.add_parser("golden", help="export one layer's bit-exact test vector",
                       description="Run NET on a photograph with the integer golden model and write "
                                   "LAYER's test vector: input.npy (int8 CxHxW), weight.npy (int8 "
                                   "Kx(C/groups)xkhxkw), bias.npy, multiplier.npy, shift.npy (int32 K), "
                                   "expected.npy (int8 KxH'xW') and meta.json.")
    s.add_argument("layer", metavar="LAYER", help="NET.convN or NET.fcN, e.g. mobilenet.conv3 "
                                                 "(see `fmprune layers NET`)")
    s.add_argument("--eps", type=_int_range(0, 127), default=0,
                   help="prune input activations with |x| <= EPS (int8 units) in every layer; "
                        "0 = exact zeros only (default 0)")
    s.add_argument("--weights", metavar="FILE",
                   help="checkpoint (state_dict; torchvision names where torchvision has the network); "
                        "default: deterministic seeded weights")
    s.add_argument("--image", default="china",
                   help="'china' or 'flower' (scikit-learn's sample photographs) or an image file "
                        "(default china)")
    s.add_argument("--out", metavar="DIR", help="output folder (default build/golden/LAYER)")
    s.set_defaults(func=cmd_golden)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .golden import UnsupportedError
    from .weights import UnknownNameError, WeightsError
    try:
        return args.func(args)
    except (UnknownNameError, WeightsError, UnsupportedError, FileNotFoundError, ValueError) as e:
        print(f"fmprune: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
