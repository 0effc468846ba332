"""The engine in Amaranth's simulator against the golden model, bit for bit, with its counters
checked against the Python model and against the memories' own transaction counts."""
import zlib

import numpy as np
import pytest

from enginetb import check_output, run_job, run_jobs
from fmprune.sw import regs
from fmprune.sw.layout import DEFAULT_FM_WAYS
from fmprune.hw.model import check_cycles, predict
from fmprune.sw import driver, fmformat, quant
from fmprune.sw.golden import QLayer

SMALL = dict(linebuf_depth=512, max_channels=64, max_blocks=16, wbuf_words=1200)


def make_spec(seed, c, h, w, k_out, k, s, p, dw, act="relu", zero=0.5, name="rand"):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (c, h, w)).astype(np.int8)
    x[rng.random(x.shape) < zero] = 0
    wt = rng.integers(-127, 128, (k_out, 1 if dw else c, k, k)).astype(np.int8)
    b = rng.integers(-2 ** 12, 2 ** 12, k_out).astype(np.int32)
    mult = rng.integers(1 << 30, 2 ** 31 - 1, k_out).astype(np.int32)
    depth = int(np.log2(max(2, c // (k_out if dw else 1) * k * k)))
    shift = rng.integers(-10 - depth // 2, -7 - depth // 2, k_out).astype(np.int32)
    a = quant.Activation.make(act, 0.05)
    return driver.LayerSpec(name, x, wt, b, mult, shift, s, p, dw, a.lo, a.hi), a


def check_counters_against_memories(cn, mem, lanes):
    """The engine's counters against the memory models' own transaction counts."""
    assert mem["oob"] == 0, "a read or write outside the memories"
    assert cn["FM_PORT_BYTES"] == mem["fm_port_bytes"], \
        f"FM_PORT_BYTES {cn['FM_PORT_BYTES']} != the memory's {mem['fm_port_bytes']} bytes read"
    assert cn["FM_VALUE_BYTES"] + cn["FM_BITMAP_BYTES"] <= cn["FM_PORT_BYTES"]
    assert cn["WEIGHT_BYTES"] + cn["PARAM_BYTES"] == mem["w_reads"] * lanes
    assert cn["OUT_BYTES"] == mem["out_bytes"], f"OUT_BYTES {cn['OUT_BYTES']} != the memory's {mem['out_bytes']}"


def check_id_and_start(name, r, lanes):
    """The ID register names the lane count; START sets busy and clears done (STATUS read in the
    cycle after START's write, so a done left from the run before shows)."""
    assert r["id"] == regs.engine_id(lanes), f"{name}: ID 0x{r['id']:08X} != 0x{regs.engine_id(lanes):08X}"
    assert r["status_at_start"] & 0b11 == 0b01, f"{name}: STATUS 0b{r['status_at_start'] & 3:02b} after START"


def golden(spec, act, eps=0):
    c = spec.input.shape[0]
    layer = QLayer(spec.name, "", "", spec.weight, spec.bias, spec.multiplier, spec.shift, spec.stride,
                   spec.padding, c if spec.depthwise else 1, act, 1.0, np.ones(len(spec.bias)), 1.0)
    return layer.forward(spec.input, eps)


def run_and_check(spec, act, lanes, *, eps=0, eps_out=0, dense_mode=False, in_layout="compressed",
                  out_layout="compressed", stall=0, out_stall=None, seed=1, budget=60_000, engine_args=SMALL,
                  weight_buffer=False):
    want = golden(spec, act, eps)
    job = driver.prepare(spec, lanes, eps=eps, eps_out=eps_out, dense_mode=dense_mode,
                         in_layout=in_layout, out_layout=out_layout, weight_buffer=weight_buffer)
    r = run_job(job, lanes, budget=budget, stall_percent=stall, out_stall_percent=out_stall, seed=seed,
                engine_args=engine_args)
    assert not r.get("timeout"), f"{spec.name}: still busy after {budget} cycles"
    assert r["error"] == 0, f"{spec.name}: error {regs.ERRORS[r['error']][0]}"
    check_id_and_start(spec.name, r, lanes)
    got = driver.decode_output(job, r["out"])
    if out_layout == "compressed" and eps_out:
        want = quant.prune(want, eps_out)
    check_output(f"{spec.name} P={lanes}", got, want)
    cn = r["counters"]
    check_counters_against_memories(cn, r["memory"], lanes)
    assert r["out"][job.out_bytes:] == bytes(len(r["out"]) - job.out_bytes), "wrote past the output region"
    # against the model
    pr = predict(spec, lanes, eps=eps, dense_mode=dense_mode, in_layout=in_layout, out_layout=out_layout,
                 eps_out=eps_out, expected=golden(spec, act, eps), weight_buffer=weight_buffer,
                 fm_bytes=r["fm_beat_bytes"], in_base=job.regs["IN_BASE"], dw_walk=engine_args.get("dw_walk", True),
                 fm_ways=engine_args.get("fm_ways", DEFAULT_FM_WAYS))
    for name in ("FM_BITMAP_BYTES", "FM_VALUE_BYTES", "PARAM_BYTES", "MACS", "VALUES_SKIPPED",
                 "WEIGHT_BYTES", "OUT_BYTES"):
        assert cn[name] == pr[name], f"{spec.name} P={lanes}: {name} RTL {cn[name]} != model {pr[name]}"
    # the feature-map port: the beats holding the rows' records, exactly in the dense layout; a
    # compressed row's read-ahead at most
    assert pr["FM_PORT_BYTES"] <= cn["FM_PORT_BYTES"] <= pr["fm_port_bytes_most"], \
        (f"{spec.name} P={lanes}: FM_PORT_BYTES RTL {cn['FM_PORT_BYTES']}, model "
         f"{pr['FM_PORT_BYTES']}..{pr['fm_port_bytes_most']}")
    # the memories' own count of the cycles they refused a request is a floor for STALL_CYCLES
    # (which also counts the engine's waits for weight words); with stalls there are refusals
    assert r["memory"]["refused"] <= cn["STALL_CYCLES"] <= cn["CYCLES"], \
        f"{spec.name}: STALL_CYCLES {cn['STALL_CYCLES']}, refused {r['memory']['refused']}, CYCLES {cn['CYCLES']}"
    if stall or out_stall:
        assert r["memory"]["refused"] > 0
    else:
        assert cn["STALL_CYCLES"] <= cn["CYCLES"] // 2
    return r, pr


KINDS = {
    #               C   H   W   K  k  s  p  dw
    "std3x3":     (6, 5, 6, 10, 3, 1, 1, False),
    "std5x5s2":   (3, 9, 8, 5, 5, 2, 2, False),
    "std11x11s4": (3, 15, 15, 4, 11, 4, 2, False),
    "pointwise":  (20, 4, 5, 12, 1, 1, 0, False),
    "pw_s2":      (9, 5, 5, 8, 1, 2, 0, False),
    "depthwise":  (12, 5, 5, 12, 3, 1, 1, True),
    "dw_s2":      (16, 7, 6, 16, 3, 2, 1, True),
    "fc":         (40, 1, 1, 9, 1, 1, 0, False),
}


# the ports' beats (feature map, output) for each lane count: every width the loader and the
# writer support
PORT_BYTES = {1: (1, 2), 4: (4, 16), 8: (16, 1), 16: (8, 4)}


@pytest.mark.parametrize("lanes", [1, 4, 8, 16])
@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_kinds(kind, lanes):
    c, h, w, ko, k, s, p, dw = KINDS[kind]
    if lanes == 1 and kind in ("std11x11s4", "fc"):
        ko = 3
    spec, act = make_spec(zlib.crc32(f"{kind}/{lanes}".encode()), c, h, w, ko, k, s, p, dw, name=kind)
    stall = 25 if (lanes in (4, 16)) else 0          # random stalls on every port
    fm_bytes, out_bytes = PORT_BYTES[lanes]
    r, _ = run_and_check(spec, act, lanes, stall=stall, seed=lanes + 3,
                         engine_args=SMALL | dict(fm_bytes=fm_bytes, out_bytes=out_bytes))
    assert (r["fm_beat_bytes"], r["out_beat_bytes"]) == (fm_bytes, out_bytes)


@pytest.mark.parametrize("lanes", [4, 16])
@pytest.mark.parametrize("kind", list(KINDS))
def test_weight_buffer(kind, lanes):
    """WEIGHT_BUFFER = 1: the weights read once (WEIGHT_BYTES = the layout's words x P, the model's
    and the memory's count), the output bit-exact, with random stalls on every port at P = 16;
    dense mode at P = 4 (every operand served from the buffer)."""
    c, h, w, ko, k, s, p, dw = KINDS[kind]
    spec, act = make_spec(zlib.crc32(f"wbuf/{kind}/{lanes}".encode()), c, h, w, ko, k, s, p, dw, name=kind)
    r, pr = run_and_check(spec, act, lanes, stall=25 if lanes == 16 else 0, seed=lanes, weight_buffer=True,
                          dense_mode=lanes == 4)
    words = driver.layout.pack_weights(spec.weight, lanes, dw).shape[0]
    assert r["counters"]["WEIGHT_BYTES"] == words * lanes, \
        f"{kind} P={lanes}: WEIGHT_BYTES {r['counters']['WEIGHT_BYTES']} != the weight layout's {words * lanes}"


def test_layers_back_to_back():
    """Layers of different shapes one after another on the same engine, as a board runs tile after
    tile, with a refused descriptor among them: nothing a run leaves behind (its "all written"
    flag, its derived values, the queues) may end or change the next one. Each is checked against
    the golden model, its counters against the model and the memories' own counts."""
    lanes = 8
    order = ["dw_s2", "std3x3", "refused", "pointwise", "dw_s2"]
    specs, jobs, bases = [], [], dict(in_base=0, w_base=0, out_base=0)
    for i, kind in enumerate(order):
        c, h, w, ko, k, s, p, dw = KINDS["std5x5s2" if kind == "refused" else kind]
        spec, act = make_spec(100 + i, c, h, w, ko, k, s, p, dw, name=f"{kind}#{i}")
        job = driver.prepare(spec, lanes, out_layout="dense" if i == 1 else "compressed", **bases)
        if kind == "refused":                # PAD >= kernel: refused after the set-up, nothing read
            job.regs["PAD"] = job.regs["KERNEL"]
        bases = dict(in_base=len(job.fm_image), w_base=len(job.w_words),
                     out_base=job.extra["out_base"] + job.out_bytes)
        specs.append((spec, act))
        jobs.append(job)
    results = run_jobs(jobs, lanes, budget=60_000, engine_args=SMALL)
    assert len(results) == len(jobs), f"{specs[len(results) - 1][0].name}: still busy after 60000 cycles"
    before = {k: 0 for k in results[0]["memory"]}
    for i, ((spec, act), job, r) in enumerate(zip(specs, jobs, results)):
        mem = {k: v - before[k] for k, v in r["memory"].items()}
        before = r["memory"]
        check_id_and_start(spec.name, r, lanes)
        if order[i] == "refused":
            assert r["error"] == regs.ERROR_CODE["RANGE"] and not any(mem.values()), (spec.name, r["error"], mem)
            assert r["counters"]["CYCLES"] == check_cycles(job.regs, lanes, SMALL["linebuf_depth"])
            continue
        assert not r.get("timeout") and r["error"] == 0, (spec.name, r.get("timeout"), r["error"])
        check_output(f"{spec.name} after {i} layers", driver.decode_output(job, r["out"]), golden(spec, act, 0))
        check_counters_against_memories(r["counters"], mem, lanes)
        pr = predict(spec, lanes, out_layout=job.extra["out_layout"], expected=golden(spec, act, 0))
        for name in ("FM_BITMAP_BYTES", "FM_VALUE_BYTES", "PARAM_BYTES", "MACS", "WEIGHT_BYTES", "OUT_BYTES"):
            assert r["counters"][name] == pr[name], f"{spec.name}: {name} RTL {r['counters'][name]} != model {pr[name]}"


def test_engine_reads_only_the_read_ranges():
    """The feature-map bytes outside fmformat.read_ranges (a compressed block's tail, what lies
    before IN_BASE), which the board's host does not send, filled with junk: the output is still
    right, and the engine makes as many reads as the ranges hold bytes."""
    _, h, w, ko, k, s, p, dw = KINDS["std3x3"]
    spec, act = make_spec(41, 12, h, w, ko, k, s, p, dw, zero=0.6, name="junk_tails")     # two channel blocks
    job = driver.prepare(spec, 4, in_base=37)
    ranges = fmformat.read_ranges(job.fm_image[37:], 12, h, w, "compressed")
    junk = bytearray(np.random.default_rng(5).integers(0, 256, len(job.fm_image), dtype=np.uint8).tobytes())
    for a, b in ranges:
        junk[37 + a:37 + b] = job.fm_image[37 + a:37 + b]
    assert sum(b - a for a, b in ranges) < len(job.fm_image) - 37      # there are tails
    job.fm_image = bytes(junk)
    r = run_job(job, 4, budget=60_000, engine_args=SMALL)
    check_output(spec.name, driver.check_run(spec.name, job, r), golden(spec, act, 0))
    # the records' bytes exactly; the beats read ahead past a row's records take junk in, unused
    assert sum(b - a for a, b in ranges) == r["counters"]["FM_VALUE_BYTES"] + r["counters"]["FM_BITMAP_BYTES"]
    assert r["counters"]["FM_PORT_BYTES"] == r["memory"]["fm_port_bytes"] > sum(b - a for a, b in ranges)


@pytest.mark.parametrize("out_layout", ["dense", "compressed"])
def test_driver_checks_what_was_written(out_layout):
    """driver.check_run accepts a real run and refuses one that ended early (OUT_BYTES 0, as the
    back-to-back bug's runs did) or wrote part of its output; in the compressed layout also an
    output read back stale (the memory as before the run). A dense run writes every byte of its
    region, so there OUT_BYTES cannot tell stale data from new."""
    spec, act = make_spec(31, 8, 4, 5, 12, 3, 1, 1, False, name="checked")
    job = driver.prepare(spec, 4, out_layout=out_layout)
    r = run_job(job, 4, budget=60_000, engine_args=SMALL)
    check_output(spec.name, driver.check_run(spec.name, job, r), golden(spec, act, 0))
    bad_runs = [dict(r, counters=dict(r["counters"], OUT_BYTES=n)) for n in (0, r["counters"]["OUT_BYTES"] - 3)]
    if out_layout == "compressed":
        bad_runs.append(dict(r, out=bytes(len(r["out"]))))
    for bad in bad_runs:
        with pytest.raises(RuntimeError, match="checked: the engine reports .* a stale or partial result"):
            driver.check_run(spec.name, job, bad)
    if out_layout == "compressed":           # a bitmap that marks channels past K = 12 does not decode
        corrupt = bytearray(r["out"])
        _, ho, wo = spec.out_shape
        corrupt[job.extra["out_base"] + fmformat.block_stride(ho, wo, "compressed")] = 0xFF   # block 1
        with pytest.raises(RuntimeError, match="checked: the output read back does not decode .* stale or partial"):
            driver.check_run(spec.name, job, dict(r, out=bytes(corrupt)))
    with pytest.raises(RuntimeError, match="refused the layer: error 3 SHAPE"):
        driver.check_run(spec.name, job, dict(r, error=3))
    with pytest.raises(RuntimeError, match="checked: the engine's ID register reads 0xF9B00010, not 0xF9B00004"):
        driver.check_run(spec.name, job, dict(r, id=regs.engine_id(16)))


@pytest.mark.parametrize("out_layout", ["dense", "compressed"])
def test_output_port_held_up(out_layout):
    """The write port refuses 95 % of cycles while reads flow: the packer blocks, the requantiser's
    queue fills, and the output stage must stop on its credits (counted a cycle late) without
    losing a value."""
    spec, act = make_spec(77, 8, 4, 4, 32, 1, 1, 0, False, zero=0.2, name="pw_held_up")
    run_and_check(spec, act, 16, out_layout=out_layout, out_stall=95, seed=9, budget=120_000)


@pytest.mark.parametrize("case", ["all_zero", "no_zeros", "eps3", "extremes_none", "relu6", "odd_k_not_multiple",
                                  "dense_layouts", "dense_mode", "dense_mode_dw", "eps_out2", "mixed_layouts"])
def test_data_cases(case):
    lanes = 4
    args = {}
    if case == "all_zero":
        spec, act = make_spec(1, 8, 4, 4, 8, 3, 1, 1, False, zero=1.0)
    elif case == "no_zeros":
        spec, act = make_spec(2, 8, 4, 4, 8, 3, 1, 1, False, zero=0.0)
        spec.input[spec.input == 0] = 1
    elif case == "eps3":
        spec, act = make_spec(3, 8, 4, 4, 8, 3, 1, 1, False, zero=0.3)
        spec.input[::2] //= 32                                         # many values within +-3
        args = dict(eps=3)
    elif case == "extremes_none":
        spec, act = make_spec(4, 8, 4, 4, 8, 3, 1, 1, False, act="none", zero=0.2)
        spec.input[:4] = np.where(spec.input[:4] > 0, 127, -128)
        spec.weight[:, :4] = np.where(spec.weight[:, :4] > 0, 127, -127)
        spec.shift[:] = -8                                             # saturates both ways
    elif case == "relu6":
        spec, act = make_spec(5, 8, 4, 4, 8, 3, 1, 1, False, act="relu6")
    elif case == "odd_k_not_multiple":
        spec, act = make_spec(6, 7, 7, 5, 5, 3, 2, 1, False)
    elif case == "dense_layouts":
        spec, act = make_spec(7, 10, 5, 5, 9, 3, 1, 1, False)
        args = dict(in_layout="dense", out_layout="dense")
    elif case == "dense_mode":
        spec, act = make_spec(8, 10, 5, 5, 9, 3, 1, 1, False)
        args = dict(dense_mode=True)
    elif case == "dense_mode_dw":
        spec, act = make_spec(9, 8, 5, 5, 8, 3, 2, 1, True)
        args = dict(dense_mode=True, in_layout="dense")
    elif case == "eps_out2":
        spec, act = make_spec(10, 8, 4, 4, 16, 3, 1, 1, False, act="none")
        args = dict(eps_out=2)
    elif case == "mixed_layouts":
        spec, act = make_spec(11, 8, 4, 4, 16, 1, 1, 0, False)
        args = dict(in_layout="dense", out_layout="compressed")
    spec.name = case
    r, pr = run_and_check(spec, act, lanes, **args)
    out = golden(spec, act, args.get("eps", 0))
    if case in ("extremes_none",):
        assert out.min() == -128 and out.max() == 127
    if case == "all_zero":
        assert r["counters"]["MACS"] == 0 and r["counters"]["FM_VALUE_BYTES"] == 0


def test_dense_mode_is_the_baseline():
    """Same hardware, skipping off: same output, every MAC issued, more cycles."""
    spec, act = make_spec(12, 16, 5, 5, 16, 3, 1, 1, False, zero=0.6)
    sparse, _ = run_and_check(spec, act, 8)
    dense, _ = run_and_check(spec, act, 8, dense_mode=True)
    macs = 16 * 16 * 9 * 25
    assert dense["counters"]["MACS"] == macs and dense["counters"]["VALUES_SKIPPED"] == 0
    assert sparse["counters"]["MACS"] < 0.6 * macs
    assert sparse["counters"]["CYCLES"] < dense["counters"]["CYCLES"]


def test_compressed_reads_are_the_limit():
    """Compressed input: the engine reads the bitmap bytes and each stored value exactly once."""
    spec, act = make_spec(13, 24, 6, 6, 8, 3, 1, 1, False, zero=0.7)
    r, _ = run_and_check(spec, act, 8)
    nnz = int(np.count_nonzero(spec.input))
    assert r["counters"]["FM_VALUE_BYTES"] == nnz
    assert r["counters"]["FM_BITMAP_BYTES"] == 3 * 6 * 6


BAD = {
    "zero_channels": (dict(IN_C=0), "ZERO_SIZE"),
    "zero_stride": (dict(STRIDE=0), "ZERO_SIZE"),
    "kernel_12": (dict(KERNEL=12), "RANGE"),
    "stride_5": (dict(STRIDE=5), "RANGE"),
    "pad_ge_kernel": (dict(PAD=3), "RANGE"),
    "clamp_lo_positive": (dict(CLAMP_LO=5), "RANGE"),
    "wrong_out_h": (dict(OUT_H=5), "SHAPE"),
    "kernel_larger_than_input": (dict(KERNEL=9, PAD=0), "SHAPE"),
    "depthwise_k_ne_c": (dict(DEPTHWISE=1), "GROUPS"),
    "line_buffer": (dict(IN_W=4000, OUT_W=4000), "LINE_BUFFER"),
    "too_many_channels": (dict(OUT_K=65), "CHANNELS"),
    "output_overflow": (dict(OUT_BASE=0xFFFF_FFA0), "ADDRESS"),   # 144-byte region
    "input_overflow": (dict(IN_BASE=0xFFFF_FFF0), "ADDRESS"),
    "weights_overflow": (dict(W_BASE=0xFFFF_FFFF), "ADDRESS"),
    "weight_buffer_too_small": (dict(WEIGHT_BUFFER=1, IN_C=100), "WEIGHT_BUFFER"),   # 1,800 words of 1,200
    "no_weight_buffer": (dict(WEIGHT_BUFFER=1), "WEIGHT_BUFFER"),                    # an engine without one
}


@pytest.mark.parametrize("case", list(BAD))
def test_illegal_descriptor(case):
    spec, act = make_spec(14, 6, 4, 4, 8, 3, 1, 1, False)
    job = driver.prepare(spec, 4)
    change, code = BAD[case]
    job.regs.update(change)
    engine_args = SMALL | dict(wbuf_words=0) if case == "no_weight_buffer" else SMALL
    r = run_job(job, 4, budget=200, engine_args=engine_args)
    assert not r.get("timeout"), f"{case}: no error within 200 cycles"
    assert r["error"] == regs.ERROR_CODE[code], f"{case}: error {r['error']} != {code}"
    assert r["status"] & 0b11 == 0b10                      # idle and done
    assert r["memory"] == dict(fm_reads=0, fm_port_bytes=0, w_reads=0, out_writes=0, out_bytes=0, oob=0, refused=0)
    check_id_and_start(case, r, 4)
    # the set-up's cycles, exactly (CYCLES counts from START, not only once the layer runs); the
    # other counters stay 0
    cn = r["counters"]
    assert cn["CYCLES"] == check_cycles(job.regs, 4, SMALL["linebuf_depth"]), \
        f"{case}: CYCLES {cn['CYCLES']} != model {check_cycles(job.regs, 4, SMALL['linebuf_depth'])}"
    assert all(v == 0 for n, v in cn.items() if n != "CYCLES"), (case, cn)


@pytest.mark.parametrize("weight_buffer", [False, True])
def test_depthwise_without_the_column_walk(weight_buffer):
    """An engine generated without the depthwise column walk (dw_walk=False, as the ULX3S builds
    it) runs depthwise layers on the scanner's path, bit-exact, with the counters of that path's
    model (streamed weights: a word an operand group, not k k words a row and block)."""
    spec, act = make_spec(77, *KINDS["depthwise"], name="dw_no_walk")
    r, pr = run_and_check(spec, act, 16, engine_args=dict(SMALL, dw_walk=False), weight_buffer=weight_buffer)
    walked = predict(spec, 16, expected=golden(spec, act), weight_buffer=weight_buffer)
    if not weight_buffer:
        assert pr["WEIGHT_BYTES"] != walked["WEIGHT_BYTES"], "the two paths' weight traffic should differ here"


@pytest.mark.parametrize("lanes,shape,zero", [(8, (16, 6, 6, 32, 1, 1, 0), 0.5), (16, (24, 5, 5, 32, 3, 1, 1), 0.5),
                                              (4, (5, 7, 7, 6, 3, 2, 1), 0.5),
                                              # K = P: the second subgroup is empty, and a sparse input
                                              # makes a walk over its 36 taps a pixel show in the cycles
                                              (4, (32, 5, 5, 4, 3, 1, 1), 0.97)])
def test_cycles_against_model(lanes, shape, zero):
    """Standard / pointwise layers without stalls: cycles within -20 % / +35 % of the model's
    estimate (the model does not capture the output stage's hand-off waits exactly). An output
    group past K costs the sequencer one position, not a walk over its taps."""
    c, h, w, ko, k, s, p = shape
    spec, act = make_spec(lanes * 31, c, h, w, ko, k, s, p, False, zero=zero)
    r, pr = run_and_check(spec, act, lanes)
    ratio = r["counters"]["CYCLES"] / pr["cycles_estimate"]
    assert 0.8 <= ratio <= 1.35, f"cycles {r['counters']['CYCLES']} against the model's {pr['cycles_estimate']}"
