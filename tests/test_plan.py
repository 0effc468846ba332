"""The driver's planner (sw/plan.py): against an exhaustive search over every tiling of small
layers, and against the engine itself (the plan's bytes, tile by tile, equal to the RTL's
counters summed over the runs; the output bit-exact)."""
import itertools
import zlib

import pytest

from enginetb import check_output, run_job
from fmprune.sw import fmformat, plan
from test_engine import SMALL, golden, make_spec


def partitions(n):
    """Every split of n units into contiguous runs: tuples of cut points."""
    for r in range(n):
        for cuts in itertools.combinations(range(1, n), r):
            yield (0,) + cuts + (n,)


def exhaustive(spec, lanes, wbuf_words):
    """The fewest bytes, and the fewest runs reading that few, over every partition and every
    choice of weight-buffer use per tile."""
    costs = plan.Costs(spec, lanes, wbuf_words)
    kout = spec.weight.shape[0]
    n = -(-kout // costs.unit)
    best = None
    for cuts in partitions(n):
        ranges = [(min(kout, a * costs.unit), min(kout, b * costs.unit)) for a, b in zip(cuts, cuts[1:])]
        for modes in itertools.product((False, True), repeat=len(ranges)):
            tiles = [costs.tile(k0, k1, wb) for (k0, k1), wb in zip(ranges, modes)]
            if None in tiles:
                continue
            cand = (sum(t.weight_bytes + t.param_bytes + t.fm_bytes for t in tiles), len(tiles))
            best = cand if best is None or cand < best else best
    return best


SEARCH = {                   # C  H  W   K  k  s  p  dw
    "std3x3": (6, 5, 6, 40, 3, 1, 1, False),
    "pointwise": (20, 4, 5, 44, 1, 1, 0, False),
    "fc": (40, 1, 1, 36, 1, 1, 0, False),
    "depthwise": (40, 5, 5, 40, 3, 1, 1, True),
}


@pytest.mark.parametrize("lanes", [4, 8, 16])
@pytest.mark.parametrize("kind", list(SEARCH))
def test_plan_is_the_exhaustive_optimum(kind, lanes):
    c, h, w, ko, k, s, p, dw = SEARCH[kind]
    spec, _ = make_spec(zlib.crc32(f"plan/{kind}".encode()), c, h, w, ko, k, s, p, dw, name=kind, zero=0.6)
    costs = plan.Costs(spec, lanes, 0)
    full = costs.fill_words(0, ko)
    for wbuf in sorted({0, 1, full // 5, full // 3, full // 2, full - 1, full}):
        got = plan.plan(spec, lanes, wbuf)
        want = exhaustive(spec, lanes, wbuf)
        assert (got.bytes_read, len(got.tiles)) == want, \
            f"{kind} P={lanes} wbuf={wbuf}: plan reads {got.bytes_read} in {len(got.tiles)} runs, best {want}"
        assert [t.k0 for t in got.tiles][0] == 0 and got.tiles[-1].k1 == ko and \
            all(a.k1 == b.k0 for a, b in zip(got.tiles, got.tiles[1:])), f"{kind}: tiles {got.tiles}"
    # the extremes: a buffer that holds everything reads the weights once, in one run
    whole = plan.plan(spec, lanes, full)
    if kind != "fc":                          # fc: streaming skips zero inputs' weights, and wins
        assert len(whole.tiles) == 1 and whole.tiles[0].weight_buffer, f"{kind}: {whole.tiles}"


class AmaranthTransport:
    def __init__(self, lanes, **engine_args):
        self.lanes, self.engine_args = lanes, engine_args

    def execute(self, job):
        r = run_job(job, self.lanes, budget=80_000, stall_percent=20, seed=7, engine_args=self.engine_args)
        assert r["memory"]["oob"] == 0
        return r


@pytest.mark.parametrize("kind, lanes, wbuf", [("std3x3", 4, 120), ("depthwise", 4, 20), ("pointwise", 16, 30),
                                                ("fc", 8, 100)])
def test_plan_on_the_engine(kind, lanes, wbuf):
    """The plan run tile by tile on the engine (its weight buffer `wbuf` words): output bit-exact,
    and each tile's weight, parameter and feature-map bytes exactly the RTL's counters. The
    input is given as an already-encoded image (the chained path of `fmprune run`)."""
    c, h, w, ko, k, s, p, dw = SEARCH[kind]
    spec, act = make_spec(zlib.crc32(f"plan-rtl/{kind}".encode()), c, h, w, ko, k, s, p, dw, name=kind, zero=0.6)
    pl = plan.plan(spec, lanes, wbuf)
    if kind != "fc":
        assert len(pl.tiles) > 1 and any(t.weight_buffer for t in pl.tiles), f"{kind}: {pl.tiles} (a case that tiles)"
    image, _ = fmformat.encode(spec.input, "compressed")
    y, r = plan.run_plan(spec, pl, AmaranthTransport(lanes, **(SMALL | dict(wbuf_words=wbuf))), fm_image=image)
    check_output(f"{kind} P={lanes} as {len(pl.tiles)} tiles", y, golden(spec, act))
    for run in r["runs"]:
        t, cn = run["tile"], run["counters"]
        got = (cn["WEIGHT_BYTES"], cn["PARAM_BYTES"], cn["FM_VALUE_BYTES"] + cn["FM_BITMAP_BYTES"])
        assert got == (t.weight_bytes, t.param_bytes, t.fm_bytes), \
            f"{kind} tile {t.k0}:{t.k1} (buffer {t.weight_buffer}): RTL weight/param/fm bytes {got}, plan " \
            f"{(t.weight_bytes, t.param_bytes, t.fm_bytes)}"
    total = sum(r["counters"][n] for n in ("WEIGHT_BYTES", "PARAM_BYTES", "FM_VALUE_BYTES", "FM_BITMAP_BYTES"))
    assert total == pl.bytes_read
    # the tiles' output regions, one after another, are the layer's output region
    want_image, _ = fmformat.encode(golden(spec, act), "compressed")
    assert r["out"] == want_image, f"{kind}: the tiles' output regions differ from the layer's encoded output"


def test_board_tiles_use_the_weight_buffer():
    """The board path (sw/tiling.run_tiled): a tile whose weights fit the engine's weight buffer
    (the INFO reply's wbuf_words) runs with WEIGHT_BUFFER = 1 and reads them once; the layer's
    output is bit-exact."""
    from fmprune.sw import layout, tiling
    c, h, w, ko, k, s, p, dw = SEARCH["std3x3"]
    spec, act = make_spec(5, c, h, w, ko, k, s, p, dw, name="tiled", zero=0.6)
    wbuf = 120
    lim = tiling.Limits(lanes=4, fm_bytes=4096, w_bytes=1200, out_bytes=4096, linebuf_words=512, max_channels=64,
                        max_blocks=16, wbuf_words=wbuf)
    seen = []

    class Recording(AmaranthTransport):
        def execute(self, job):
            r = super().execute(job)
            seen.append((job.regs["WEIGHT_BUFFER"], job.regs["OUT_K"], r["counters"]["WEIGHT_BYTES"]))
            return r

    y, r = tiling.run_tiled(spec, Recording(4, **(SMALL | dict(wbuf_words=wbuf))), lim)
    check_output("tiled on a board's limits", y, golden(spec, act))
    assert len(seen) > 1 and any(wb for wb, _, _ in seen), seen
    for wb, kt, wbytes in seen:
        fill = layout.pack_weights(spec.weight[:kt], 4, False).shape[0]
        assert wb == (fill <= wbuf), (wb, kt, fill)
        if wb:
            assert wbytes == fill * 4, f"a buffered tile of {kt} channels read {wbytes} weight bytes, not {fill * 4}"
