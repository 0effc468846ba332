"""fmprune's command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import zoo

EPILOG = """examples:
  fmprune layers mobilenet
  fmprune golden mobilenet.conv3 --out build/golden/mobilenet.conv3
  fmprune golden vgg16.conv5 --eps 2 --weights vgg16-397923af.pth
  fmprune sim mobilenet.conv3 --sim verilator --lanes 16
  fmprune run mobilenet --eps 1
  fmprune verilog --lanes 16
  fmprune bitstream ulx3s
  fmprune run mobilenet --port /dev/ttyUSB0
  fmprune analyze --all
  fmprune sweep-eps --hardware 3
  fmprune prune --granularity channel,kernel --target 0.5
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


def cmd_sim(args) -> int:
    from ..sim.layer import simulate_layer
    report = simulate_layer(args.layer, simulator=args.sim, lanes=args.lanes, eps=args.eps, dense=args.dense,
                            waves=args.waves, weights=args.weights, crop=args.crop, stall=args.stall,
                            out_dir=args.out, budget=args.budget, wbuf_words=wbuf_words(args), fm_bytes=args.fm_bytes,
                            out_bytes=args.out_bytes, fm_ways=args.fm_ways)
    return 0 if report["bit_exact"] and report["counters_agree_with_memories"] else 1


def cmd_run(args) -> int:
    from ..sim.network import run_network
    result = run_network(args.net, image=args.image, weights=args.weights, eps=args.eps, lanes=args.lanes,
                         simulator=args.sim, out=args.out, port=args.port, baud=args.baud,
                         wbuf_words=wbuf_words(args), fm_bytes=args.fm_bytes, out_bytes=args.out_bytes,
                         fm_ways=args.fm_ways)
    return 0 if result["top5_identical"] and result["bit_exact"] else 1


def wbuf_words(args) -> int:
    """--wbuf-kib as words of P bytes (the engine's generation parameter)."""
    from .layout import default_wbuf_words
    if getattr(args, "wbuf_kib", None) is None:
        return default_wbuf_words(args.lanes)
    return args.wbuf_kib * 1024 // args.lanes


def cmd_verilog(args) -> int:
    from ..hw.verilog import generate, lint
    wbuf = wbuf_words(args)
    path, ports = generate(args.lanes, args.out, wbuf_words=wbuf, fm_bytes=args.fm_bytes, out_bytes=args.out_bytes,
                           fm_ways=args.fm_ways)
    print(f"wrote {path} (module fmprune_engine, P={args.lanes}, weight buffer {wbuf:,} words of {args.lanes} bytes, "
          f"feature-map port {args.fm_bytes} and output port {args.out_bytes} bytes a beat, "
          f"{args.fm_ways} loader way{'s' if args.fm_ways > 1 else ''})")
    for direction, width, name, doc in ports:
        print(f"  {direction:6s} {width:4d}  {name:18s} {doc}")
    problems = lint(path)
    print(f"Verilator -Wall lint (waivers and their reasons in hw/lint.vlt): "
          f"{'clean' if not problems else f'{len(problems)} warnings'}")
    for ln in problems[:20]:
        print("  " + ln)
    return 0 if not problems else 1


def cmd_bitstream(args) -> int:
    from ..boards.top import build, sweep
    if args.sweep is not None:
        if args.seed is not None or args.program:
            raise SystemExit("fmprune: --sweep builds its own seeds and programs nothing: drop --seed / --program")
        res = sweep(args.board, args.sweep, lanes=args.lanes, clk_mhz=args.clk_mhz, baud=args.baud, jobs=args.jobs,
                    router=args.router)
        return 0 if res["failed"] == 0 else 2
    r = build(args.board, lanes=args.lanes, clk_mhz=args.clk_mhz, baud=args.baud, seed=args.seed,
              router=args.router, program=args.program)
    u = r["utilisation"]
    print("  ".join(f"{k} {v['used']:,}/{v['total']:,}" for k, v in u.items()))
    print(f"engine clock {r['clock']}: max {r['fmax_mhz']} MHz post-route against {r['clk_target_mhz']:g} MHz: "
          f"timing {'met' if r['timing_met'] else 'NOT met'}; {r['build_s']} s")
    print(f"wrote {r['bitstream']} and {Path(r['bitstream']).parent / 'report.json'}")
    if not r["timing_met"]:
        print(f"fmprune: timing NOT met: the engine is not guaranteed to work at {r['clk_target_mhz']:g} MHz; "
              f"build with --clk-mhz at or below {r['fmax_mhz']}", file=sys.stderr)
        return 1
    return 0


def cmd_analyze(args) -> int:
    from .analyze import analyze, analyze_all, print_table
    try:
        eps = [int(e) for e in args.eps.split(",") if e.strip()]
    except ValueError:
        raise ValueError(f"--eps takes integers separated by commas, e.g. 0,1,2,4,8; got {args.eps!r}") from None
    kw = dict(weights=args.weights, images_dir=args.images, eps_list=eps, channel_threshold=args.channel_threshold)
    if args.all:
        if args.weights:
            raise ValueError("--all runs six networks: give --weights only with a single NET")
        res = analyze_all(**kw)
        eps_sorted = sorted(set(eps))
        print(f"{'network':12s} {'fm share':>8s} {'w=0':>6s} " + " ".join(f"{'<=' + str(x):>6s}" for x in eps_sorted)
              + "  weights")
        for srow in res["summary"]:
            print(f"{srow['network']:12s} {srow['input_share']:8.1%} {srow['zero_weights']:6.1%} "
                  + " ".join(f"{srow[f'within_eps{x}']:6.1%}" for x in eps_sorted) + f"  {srow['weights']}")
        print("NOTE: deterministic (seeded, untrained) weights: zero fractions are not those of trained ImageNet "
              "weights; with --weights (per network) the study is the paper's.")
        print("wrote build/analysis/summary.json, summary.csv, summary.png and one folder per network")
        return 0
    if not args.net:
        raise ValueError("give a network (fmprune analyze mobilenet) or --all")
    res = analyze(args.net, **kw)
    print_table(res)
    print(f"wrote build/analysis/{args.net}/analysis.json, analysis.csv, " + ", ".join(Path(p).name for p in res["plots"]))
    return 0


def cmd_sweep(args) -> int:
    from .sweep import sweep
    r = sweep(max_drop=args.max_drop, channel_threshold=args.channel_threshold)
    if not args.hardware:
        return 0
    from ..sim.network import hardware_check
    base = r["base_accuracy"]
    eps = args.hw_eps if args.hw_eps is not None else max(row["eps"] for row in r["rows"]
                                                          if row["value"]["accuracy"] >= base)
    print(f"through the simulated engine at eps {eps}:")
    h = hardware_check(eps, args.hardware)
    return 0 if h["predictions_identical"] and h["bit_exact"] else 1


def cmd_prune(args) -> int:
    from .prune import Options, run
    gran = tuple(g.strip() for g in args.granularity.split(",") if g.strip())
    opts = Options(granularity=gran, target=args.target, method=args.method, particles=args.particles,
                   iterations=args.iterations, noise=args.noise, stages=args.stages,
                   retrain_epochs=args.retrain_epochs, group=args.group, max_drop=args.max_drop, seed=args.seed)
    r = run(opts, weights=args.weights, out_dir=Path(args.out) if args.out else Path("build") / "prune",
            compare=not args.no_compare)
    if args.hardware:
        from ..sim.network import prune_hardware
        r = prune_hardware(r, args.hardware)
        rows = [("unpruned", r["unpruned"])] + list(r["methods"].items())
        return 0 if all(v["hardware"]["bit_exact"] and v["hardware"]["predictions_identical"] for _, v in rows) else 1
    return 0


def _lanes(s):
    from .layout import check_lanes
    v = _int_range(1, 64)(s)
    try:
        check_lanes(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return v


WEIGHTS_HELP = ("checkpoint (state_dict; torchvision names where torchvision has the network); "
                "default: deterministic seeded weights")


def _common(s, *names):
    """The options several commands share, with one wording each."""
    for name in names:
        if name == "eps":
            s.add_argument("--eps", type=_int_range(0, 127), default=0,
                           help="prune input activations with |x| <= EPS (int8 units) in every layer; "
                                "0 = exact zeros only (default 0)")
        elif name == "weights":
            s.add_argument("--weights", metavar="FILE", help=WEIGHTS_HELP)
        elif name == "image":
            s.add_argument("--image", default="china",
                           help="'china' or 'flower' (scikit-learn's sample photographs) or an image file "
                                "(default china)")
        elif name == "lanes":
            s.add_argument("--lanes", "-P", type=_lanes, default=16,
                           help="MAC lanes P: 1, 2, 4 or a multiple of 8 (default 16)")
        elif name == "sim":
            s.add_argument("--sim", choices=["verilator", "icarus"], default="verilator",
                           help="simulator (default verilator)")
        elif name == "wbuf":
            from .layout import DEFAULT_FM_BYTES, DEFAULT_FM_WAYS, DEFAULT_OUT_BYTES, LOADER_WAYS, PORT_BYTES
            s.add_argument("--wbuf-kib", type=_int_range(0, 4096), default=None, metavar="KIB",
                           help="the engine's weight buffer in KiB (a generation parameter; 0: none; "
                                "default 256)")
            s.add_argument("--fm-bytes", type=int, choices=PORT_BYTES, default=DEFAULT_FM_BYTES, metavar="B",
                           help="the feature-map read port's beat in bytes, 1, 2, 4, 8 or 16 (a generation "
                                f"parameter; default {DEFAULT_FM_BYTES}: a 64-bit bus)")
            s.add_argument("--out-bytes", type=int, choices=PORT_BYTES, default=DEFAULT_OUT_BYTES, metavar="B",
                           help="the output write port's beat in bytes, 1, 2, 4, 8 or 16, a strobe a byte (a "
                                f"generation parameter; default {DEFAULT_OUT_BYTES})")
            s.add_argument("--fm-ways", type=int, choices=LOADER_WAYS, default=DEFAULT_FM_WAYS, metavar="N",
                           help="the loader's ways, 1 or 2: segment parsers, each writing its own "
                                f"line-buffer bank (a generation parameter; default {DEFAULT_FM_WAYS})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fmprune",
        description="Dynamic runtime feature-map pruning in hardware: the model zoo and its bit-exact "
                    "int8 golden model, the zero-skipping engine's RTL co-simulated layer by layer or "
                    "network by network, its Verilog, bitstreams for two FPGA boards with the host driver "
                    "over their serial port, and the paper's sparsity study.",
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
    _common(s, "eps", "weights", "image")
    s.add_argument("--out", metavar="DIR", help="output folder (default build/golden/LAYER)")
    s.set_defaults(func=cmd_golden)

    s = sub.add_parser("sim", help="run one layer through the engine's RTL and compare with the golden model",
                       description="Export LAYER's test vector (as `fmprune golden`) to OUT, run it through the "
                                   "generated Verilog of the engine on Verilator or Icarus (cocotb), compare the "
                                   "output value by value with the golden model, print a summary and write "
                                   "OUT/report.json and OUT/output.npy. Exit status 1 on any mismatch.")
    s.add_argument("layer", metavar="LAYER", help="NET.convN or NET.fcN, e.g. mobilenet.conv3")
    _common(s, "sim", "lanes", "eps", "weights", "wbuf")
    s.add_argument("--dense", action="store_true", help="dense mode: zero skipping off (the baseline)")
    s.add_argument("--waves", action="store_true", help="write a VCD waveform and print its path")
    s.add_argument("--crop", type=_int_range(1, 4096), metavar="N",
                   help="simulate only the centre N x N of the input (default: the whole layer)")
    s.add_argument("--stall", type=_int_range(0, 90), default=0, metavar="PCT",
                   help="random memory stalls on every port, percent of cycles (default 0)")
    s.add_argument("--budget", type=_int_range(1, 2 ** 40), default=200_000_000, help="cycle budget")
    s.add_argument("--out", metavar="DIR", help="folder (default build/sim/LAYER)")
    s.set_defaults(func=cmd_sim)

    s = sub.add_parser("verilog", help="write the engine as one Verilog file and list its ports",
                       description="Generate the engine alone (module fmprune_engine) with Amaranth's built-in "
                                   "Yosys, write OUT/fmprune_engine.v, print its ports and lint it with "
                                   "Verilator -Wall (waivers explained in hw/lint.vlt).")
    _common(s, "lanes", "wbuf")
    s.add_argument("--out", default="build/verilog", metavar="DIR", help="folder (default build/verilog)")
    s.set_defaults(func=cmd_verilog)

    s = sub.add_parser("bitstream", help="build a board's bitstream with the open toolchain (YoWASP)",
                       description="Build BOARD's top-level (engine, on-chip memories, UART bridge; "
                                   "docs/boards.md) with Yosys and nextpnr from PyPI (YoWASP) into build/boards/"
                                   "BOARD and write report.json there: device, lanes, LUT / FF / DSP / block-RAM "
                                   "use and totals, post-route maximum frequency, whether timing met, build "
                                   "time. Programs the board only with --program. Exit status 1 if timing "
                                   "was not met, 2 if a tool failed or the design does not fit the device "
                                   "(report.json then says which resources overflow).")
    from ..boards.top import BOARDS, ROUTERS
    s.add_argument("board", metavar="BOARD", choices=list(BOARDS), help=" or ".join(BOARDS))
    s.add_argument("--lanes", "-P", type=_lanes, default=None,
                   help="MAC lanes P (default: the board's, " +
                        ", ".join(f"{b.system.lanes} on the {b.title}" for b in BOARDS.values()) + ")")
    s.add_argument("--clk-mhz", type=float, default=None,
                   help=f"engine clock (ULX3S, from its PLL; default {BOARDS['ulx3s'].system.clk_hz / 1e6:g}). "
                        f"The iCEBreaker runs at {BOARDS['icebreaker'].system.clk_hz / 1e6:g} MHz")
    s.add_argument("--baud", type=_int_range(300, 100_000_000), default=None,
                   help="the UART's baud rate (default " +
                        ", ".join(f"{b.system.baud:,} on the {b.title}" for b in BOARDS.values()) +
                        "); within 2 %% of the clock / N, N >= 4. The host's `fmprune run --port` must "
                        "use the same --baud")
    s.add_argument("--seed", type=_int_range(0, 2 ** 31 - 1), default=None,
                   help="nextpnr's placement seed (default: nextpnr's own); the post-route maximum frequency "
                        "varies from seed to seed, so a design close to its target may meet it with another seed")
    s.add_argument("--router", choices=ROUTERS, default=None,
                   help="nextpnr's router (default: " +
                        ", ".join(f"{b.router} on the {b.title}" for b in BOARDS.values()) +
                        "; router2 runs with its timing-driven rip-up)")
    s.add_argument("--program", action="store_true", help="program the board afterwards (openFPGALoader / iceprog)")
    s.add_argument("--sweep", type=_int_range(1, 64), default=None, metavar="N",
                   help="measure instead: N builds with nextpnr's own seed and seeds 1..N-1, and "
                        "BOARD/sweep.json with each one's maximum frequency and how many met timing "
                        "(exit status 2 only if a build failed)")
    s.add_argument("--jobs", "-j", type=_int_range(1, 64), default=2, help="builds at a time in a sweep (default 2)")
    s.set_defaults(func=cmd_bitstream)

    s = sub.add_parser("analyze", help="sparsity and bandwidth study of a network (Liang et al.)",
                       description="Run NET on real images and report, per layer: input feature map, weight and "
                                   "output bytes and their shares of the traffic; zero weights; input activations "
                                   "that are zero and within each eps; input channels the channel-granular rule "
                                   "prunes; the bytes the compressed layout reads against dense; MACs skipped. "
                                   "Writes build/analysis/NET/{analysis.json,analysis.csv,traffic.png,zeros.png,eps.png}.")
    s.add_argument("net", metavar="NET", nargs="?", help=f"network: {', '.join(zoo.NETWORKS)}")
    s.add_argument("--all", action="store_true", help="the paper's six networks side by side")
    _common(s, "weights")
    s.add_argument("--images", metavar="DIR", help="folder of images (default: the scikit-learn sample photographs)")
    s.add_argument("--eps", default="0,1,2,4,8", help="eps values, comma-separated (default 0,1,2,4,8)")
    s.add_argument("--channel-threshold", type=float, default=0.99, metavar="F",
                   help="a channel is pruned when at least this fraction of its values is within eps (default 0.99)")
    s.set_defaults(func=cmd_analyze)

    s = sub.add_parser("sweep-eps", help="accuracy of the network trained here against eps pruning",
                       description="On the digit network trained by `make train` (trained first if missing): for "
                                   "eps = 0, 1, 2, ... until top-1 falls by more than MAX_DROP, the integer model's "
                                   "held-out top-1 against the feature-map values, bytes (compressed layout) and MACs "
                                   "removed, for value-granular skipping and for the paper's channel-granular rule. "
                                   "Writes build/sweep/sweep.json and sweep.png.")
    s.add_argument("--max-drop", type=float, default=0.05, help="stop after top-1 falls by this much (default 0.05)")
    s.add_argument("--channel-threshold", type=float, default=0.99, metavar="F",
                   help="channel rule: prune a channel with at least this fraction within eps (default 0.99)")
    s.add_argument("--hardware", type=_int_range(0, 359), default=0, metavar="N",
                   help="then run N held-out images through the simulated engine at the largest eps without "
                        "accuracy loss (or --hw-eps) and compare predictions, bytes, MACs and cycles")
    s.add_argument("--hw-eps", type=_int_range(0, 127), default=None, help="eps for --hardware")
    s.set_defaults(func=cmd_sweep)

    from .train import TRAIN_HELP, add_train_args, cmd_train
    s = sub.add_parser("train", help="train a network here (the digit network; VGG- or ResNet-style on --data)",
                       description=TRAIN_HELP)
    add_train_args(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("prune", help="structured pruning of a network trained here (Anwar et al.'s particle filter)",
                       description="Prune a network trained here: the digit network `make train` trains, or "
                                   "any checkpoint `fmprune train` wrote (--weights), at channel, "
                                   "kernel and/or intra-kernel strided granularity (Anwar, Hwang and Sung, arXiv "
                                   "1512.08571): layer by layer, in stages of increasing sparsity up to --target, "
                                   "each layer's mask chosen by a particle filter on the misclassification rate of "
                                   "a validation split of the training data, the network retrained after each stage "
                                   "with its masks held; then the same schedule with the magnitude criterion, for "
                                   "comparison. Writes build/prune/NET-GRAN-tT-METHOD.pt (T: the target in %%; a checkpoint "
                                   "of the same network, loadable wherever its weights are) and NET-GRAN-tT.json with test accuracy "
                                   "(float and the integer golden model), sparsity, parameters and MACs.")
    s.add_argument("--granularity", default="channel", metavar="G[,G]",
                   help="channel, kernel, strided, or a comma-separated combination (default channel)")
    s.add_argument("--target", type=float, default=0.5,
                   help="share of each layer's units pruned at the last stage, 0 <= T < 1 (default 0.5)")
    s.add_argument("--method", choices=["particle", "magnitude"], default="particle",
                   help="importance criterion (default particle: the paper's particle filter)")
    s.add_argument("--no-compare", action="store_true", help="skip the magnitude criterion's run")
    s.add_argument("--particles", type=int, default=16, help="particles per layer search (default 16)")
    s.add_argument("--iterations", type=int, default=4, help="particle-filter iterations (default 4)")
    s.add_argument("--noise", type=float, default=0.1,
                   help="share of a particle's pruned units swapped in each perturbation (default 0.1)")
    s.add_argument("--stages", type=int, default=2, help="pruning stages up to the target (default 2)")
    s.add_argument("--retrain-epochs", type=int, default=4, help="retraining epochs after each stage (default 4)")
    s.add_argument("--group", type=int, default=1,
                   help="kernel granularity: output channels a kernel unit spans (default 1, the paper's; "
                        "16: the engine's lane group at P = 16)")
    s.add_argument("--max-drop", type=float, default=None, metavar="D",
                   help="accuracy budget: undo the stage that lowers validation accuracy by more than D, and stop")
    s.add_argument("--seed", type=int, default=0, help="seed of the search and the retraining (default 0)")
    s.add_argument("--weights", metavar="FILE", help="a checkpoint `fmprune train` wrote, with its .json "
                   "(default build/train/digitnet.pt)")
    s.add_argument("--out", metavar="DIR", help="output folder (default build/prune)")
    s.add_argument("--hardware", type=_int_range(0, 359), default=0, metavar="N",
                   help="then stream N held-out images through the simulated engine, unpruned and pruned: "
                        "cycles, bytes read, bit-exactness")
    s.set_defaults(func=cmd_prune)

    s = sub.add_parser("run", help="stream a whole network through the simulated engine (or a board)",
                       description="Run every convolution and fully-connected layer of NET through the "
                                   "simulated engine, layer by layer (each layer's compressed output feeds the "
                                   "next), or with --port through a board, tile by tile; pooling, residual adds and concatenation run in the golden model on "
                                   "the host. Ends with the RTL's top-5 against the golden model's and a "
                                   "per-layer table, also written as JSON. Exit status 1 unless bit-exact.")
    s.add_argument("net", metavar="NET", help=f"network: {', '.join(zoo.NETWORKS)}")
    _common(s, "image", "weights", "eps", "lanes", "sim", "wbuf")
    s.add_argument("--out", metavar="FILE", help="JSON result (default build/run/NET.json)")
    s.add_argument("--port", metavar="DEV", help="run on the board on this serial port (e.g. /dev/ttyUSB0) "
                                                 "instead of the simulator, tile by tile; --lanes must match")
    s.add_argument("--baud", type=int, default=1_000_000, help="baud rate with --port (default 1000000)")
    s.set_defaults(func=cmd_run)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .golden import UnsupportedError
    from .weights import UnknownNameError, WeightsError
    try:
        return args.func(args)
    except (UnknownNameError, WeightsError, UnsupportedError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"fmprune: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
