"""Descriptor set-up and checks: the first stage of every run. From the descriptor's registers it
derives, once per layer, the values the other stages need (channel blocks, row and region strides,
weight-group strides, line-buffer rows and offsets), then checks the descriptor and names the first
rule it breaks (sw/regs.py's error codes). hw/model.setup is its model."""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..sw import regs
from ..sw.layout import BLOCK, DEFAULT_FM_WAYS, check_ways, dw_lanes, param_words
from .arith import SeqMul, times_const
from .ports import Descriptor

MAX_KERNEL, MAX_STRIDE = 11, 4


class Derived(data.StructLayout):
    """What the set-up derives from the descriptor, for the other stages (valid from the set-up's
    end until the next START). P lanes, D = min(P, 8) depthwise lanes, Q = max(P, 8)."""
    def __init__(self, lanes):
        super().__init__({
            "cb_in": 14,                    # ceil(C / 8): input channel blocks
            "cb_out": 14,                   # ceil(K / 8): output channel blocks
            "khkw": 8,                      # k * k
            "cb_lb": 14,                    # ceil(cb_in / ways): line-buffer words of one pixel in a bank
            "row_words": 32,                # W * cb_lb: line-buffer words of one input row in a bank
            "in_stride": 40,                # bytes of one input block's region (fmformat.block_stride)
            "out_stride": 40,               # bytes of one output block's region
            "c_khkw": 32,                   # C * k * k: weight words per standard group
            "n_bg": 16,                     # block groups: ceil(K / Q) (depthwise: ceil(K / 8))
            "n_sg": 4,                      # subgroups per block group: Q / P (depthwise: 8 / D)
            "n_lanes": range(lanes + 1),    # lanes a group uses: P (depthwise: D)
            "bg_stride": 36,                # weight words per block group: n_sg * (k k or C k k)
            "w_fill": 36,                   # the layer's weight words (sw/layout.py): ceil(K / P) C k k
                                            # (depthwise: ceil(K / D) k k), what the weight buffer holds
            "w_origin": 32,                 # the weight address of word 0: W_BASE, or 0 in the weight buffer
            "rows": 5,                      # R: input rows that fit the line buffer, at most 16
            "rows_acc": 32,                 # R * row_words
            "pad_words": 40,                # pad * row_words: line-buffer words of the top padding rows
            "s_words": 40,                  # stride * row_words
            "pad_cb": 20,                   # pad * cb_lb: line-buffer words of the left padding columns
            "s_cb": 20,                     # stride * cb_lb
            "khkw_x": data.ArrayLayout(11, BLOCK),      # i * k * k, the weight offset of channel i
            "neg_eps_in": signed(8),        # -EPS_IN
            "neg_eps_out": signed(8),       # -EPS_OUT
        })


class Setup(wiring.Component):
    """The descriptor's set-up and checks, started by ``start``; a few hundred cycles once per layer.

    The products come from one shift-and-add multiplier (``hw/arith.SeqMul``), a bit of the
    narrower operand a cycle, walked by two states and a step counter (``MUL`` loads the operands,
    ``MUL_WAIT`` writes the product), so that nothing here is on the clock path: its next state
    reads flip-flops only. Then the line-buffer rows (R) are counted, one row every two cycles, and
    the checks take three short cycles: each condition into a register, the first failing one's
    code, the decision. ``hw/model.check_cycles`` counts all of it exactly.

    Parameters
    ----------
    lanes : int
        P.
    linebuf_depth, max_channels, max_blocks, wbuf_words : int
        The engine's buffer sizes (its generation parameters), which the checks hold the layer to.
    ways : int
        The loader's ways, the line buffer's banks (sw/layout.linebuf_cb).

    Attributes
    ----------
    desc : In(Descriptor())
        The descriptor's registers (held during the run).
    start : In(1)
        Begin the set-up (one cycle; ignored while busy).
    done : Out(1)
        High for one cycle at the end, with ``error``.
    error : Out(8)
        With ``done``: 0, or the code of the first rule the descriptor breaks (sw/regs.py ERRORS).
    derived : Out(Derived(lanes))
        The derived values, valid from ``done`` on.
    """

    def __init__(self, lanes, *, linebuf_depth, max_channels, max_blocks, wbuf_words=0, ways=DEFAULT_FM_WAYS):
        check_ways(ways)
        self.P, self.D, self.Q = lanes, dw_lanes(lanes), max(lanes, BLOCK)
        self.ways = ways
        self.linebuf_depth, self.max_channels, self.max_blocks = linebuf_depth, max_channels, max_blocks
        self.wbuf_words = wbuf_words
        super().__init__({"desc": In(Descriptor()), "start": In(1), "done": Out(1), "error": Out(8),
                          "derived": Out(Derived(lanes))})

    def elaborate(self, platform):
        m = Module()
        P, D, Q = self.P, self.D, self.Q
        PW = param_words(P)
        d = self.desc
        k, s, pad, dw = d.KERNEL, d.STRIDE, d.PAD, d.DEPTHWISE
        C, H, W, K, Ho, Wo = d.IN_C, d.IN_H, d.IN_W, d.OUT_K, d.OUT_H, d.OUT_W
        lo, hi = d.CLAMP_LO.as_signed(), d.CLAMP_HI.as_signed()

        # the derived values the other stages read (self.derived mirrors them)
        out = {name: Signal(self.derived.shape()[name].shape, name=name)
               for name in ("cb_in", "cb_lb", "cb_out", "khkw", "row_words", "in_stride", "out_stride", "c_khkw", "n_bg",
                            "n_sg", "n_lanes", "bg_stride", "w_fill", "w_origin", "rows", "rows_acc", "pad_words", "s_words", "pad_cb",
                            "s_cb", "neg_eps_in", "neg_eps_out")}
        khkw_x = [Signal(11, name=f"khkw_x{i}") for i in range(BLOCK)]
        m.d.comb += [self.derived[n].eq(v) for n, v in out.items()]
        m.d.comb += [self.derived.khkw_x[i].eq(khkw_x[i]) for i in range(BLOCK)]
        cb_in, cb_lb, cb_out, khkw, row_words = out["cb_in"], out["cb_lb"], out["cb_out"], out["khkw"], out["row_words"]
        in_stride, out_stride, c_khkw = out["in_stride"], out["out_stride"], out["c_khkw"]
        n_bg, n_sg, n_lanes, bg_stride = out["n_bg"], out["n_sg"], out["n_lanes"], out["bg_stride"]
        rows, rows_acc = out["rows"], out["rows_acc"]

        # the values only the checks need
        in_end = Signal(64)
        out_end = Signal(64)
        w_end = Signal(64)
        p_end = Signal(64)
        rows_fit = Signal()
        shape_ok = Signal()
        span_h = Signal(20)                 # (Ho - 1) * s + k: input rows the output needs
        span_w = Signal(20)
        span_hs = Signal(21)                # span_h + s, span_w + s
        span_ws = Signal(21)
        in_h = Signal(18)                   # H + 2 pad
        in_w = Signal(18)
        hw_ = Signal(32)                    # H * W
        howo = Signal(32)
        in_size = Signal(48)                # cb_in * in_stride
        out_size = Signal(48)
        w_size = Signal(52)
        w_groups = Signal(16)               # weight groups in the layout: ceil(K / P) (depthwise: ceil(K / D))
        m.submodules.mul = mul = SeqMul(40, 16)
        mul_i = Signal(4)                   # the product being made (`steps` below)
        mul_last = Signal()                 # mul_i is the last step

        # every product is a shift-and-add over the narrower operand's bits (the second):
        # hw/model._derive_operands lists them in this order
        steps = [
            (hw_, H, W), (howo, Ho, Wo), (row_words, W, cb_lb), (c_khkw, C, khkw),
            (in_size, in_stride, cb_in), (out_size, out_stride, cb_out),
            (bg_stride, Mux(dw, khkw, c_khkw), n_sg), (w_size, bg_stride, n_bg),
            (out["w_fill"], Mux(dw, khkw, c_khkw), w_groups),
            (out["pad_words"], row_words, pad), (out["s_words"], row_words, s), (out["pad_cb"], cb_lb, pad),
            (out["s_cb"], cb_lb, s), (span_h, Ho - 1, s), (span_w, Wo - 1, s),
        ]
        failed = Signal(len(regs.ERRORS) - 1)           # bit i: error code i + 1
        code = Signal(8)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "DERIVE"
            with m.State("DERIVE"):          # cheap terms; the products follow, one at a time
                m.d.sync += [
                    cb_in.eq((C + 7) >> 3), cb_lb.eq((C + 8 * self.ways - 1) >> (2 + self.ways)),
                    cb_out.eq((K + 7) >> 3), khkw.eq(k * k),
                    out["neg_eps_in"].eq(-d.EPS_IN), out["neg_eps_out"].eq(-d.EPS_OUT),
                    rows.eq(0), rows_acc.eq(0), p_end.eq(d.P_BASE + K * PW),
                    out["w_origin"].eq(Mux(d.WEIGHT_BUFFER, 0, d.W_BASE)),
                    in_h.eq(H + 2 * pad), in_w.eq(W + 2 * pad),
                ]
                # the layout's groups: ceil(K / D) (D and, below 8, P are powers of two), or with
                # P >= 8 (Q = P) the block groups
                with m.If(dw):
                    m.d.sync += [n_bg.eq((K + 7) >> 3), n_sg.eq(BLOCK // D), n_lanes.eq(D),
                                 w_groups.eq((K + D - 1) >> (D.bit_length() - 1))]
                with m.Else():
                    m.d.sync += [n_bg.eq((K + Q - 1) // Q), n_sg.eq(Q // P), n_lanes.eq(P),
                                 w_groups.eq((K + Q - 1) // Q if P >= BLOCK else (K + P - 1) >> (P.bit_length() - 1))]
                m.d.sync += [mul_i.eq(0), mul_last.eq(0)]
                m.next = "MUL"
            with m.State("MUL"):
                with m.Switch(mul_i):
                    for i, (dest, a, b) in enumerate(steps):
                        with m.Case(i):
                            m.d.comb += [mul.a.eq(a), mul.b.eq(b)]
                m.d.comb += mul.start.eq(1)
                m.next = "MUL_WAIT"
            with m.State("MUL_WAIT"):
                with m.If(mul.done):
                    with m.Switch(mul_i):
                        for i, (dest, a, b) in enumerate(steps):
                            with m.Case(i):
                                m.d.sync += dest.eq(mul.p)
                                if dest is hw_:
                                    m.d.sync += in_stride.eq((mul.p << 3) + Mux(d.IN_LAYOUT, mul.p, 0))
                                if dest is howo:
                                    m.d.sync += out_stride.eq((mul.p << 3) + Mux(d.OUT_LAYOUT, mul.p, 0))
                                if dest is span_h or dest is span_w:
                                    m.d.sync += dest.eq(mul.p + k)
                    m.d.sync += [mul_i.eq(mul_i + 1), mul_last.eq(mul_i + 2 == len(steps))]
                    with m.If(mul_last):
                        m.next = "ENDS"
                    with m.Else():
                        m.next = "MUL"
            with m.State("ENDS"):
                # i k k as a shift and at most one add (7 = 8 - 1), not a multiplier
                m.d.sync += [khkw_x[i].eq(times_const(khkw, i)) for i in range(BLOCK)]
                m.d.sync += [in_end.eq(d.IN_BASE + in_size), out_end.eq(d.OUT_BASE + out_size),
                             w_end.eq(d.W_BASE + w_size),
                             span_hs.eq(span_h + s), span_ws.eq(span_w + s)]
                m.next = "ROWS"
            with m.State("ROWS"):            # R = rows that fit the line buffer, at most 16
                # the sums made in ENDS: with the add in the same cycle as the compares (from the
                # descriptor's registers across the chip) it was the ULX3S's critical path at
                # 4aed679 (router2, 10.3 ns)
                m.d.sync += shape_ok.eq((span_h <= in_h) & (span_hs > in_h) & (span_w <= in_w) & (span_ws > in_w))
                m.d.sync += rows_fit.eq((rows < 16) & (rows_acc + row_words <= self.linebuf_depth // self.ways) &
                                        (row_words != 0))
                m.next = "ROWS_ADD"
            with m.State("ROWS_ADD"):        # the compare above, registered, decides
                with m.If(rows_fit):
                    m.d.sync += [rows.eq(rows + 1), rows_acc.eq(rows_acc + row_words)]
                    m.next = "ROWS"
                with m.Else():
                    m.next = "CHECK"
            # the checks: each condition into a register (CHECK), then the first failing one's
            # code (CHECK_CODE), then the decision (CHECK_END); three short cycles, not one long one
            with m.State("CHECK"):
                conds = {
                    "ZERO_SIZE": (C == 0) | (H == 0) | (W == 0) | (K == 0) | (Ho == 0) | (Wo == 0) | (k == 0) | (s == 0),
                    "RANGE": (k > MAX_KERNEL) | (s > MAX_STRIDE) | (pad >= k) | (lo > 0) | (hi < 0),
                    "SHAPE": ~shape_ok,
                    "GROUPS": dw & (K != C),
                    "LINE_BUFFER": (rows < k) | (rows < s),
                    "CHANNELS": (K > self.max_channels) | (cb_in > self.max_blocks) | (cb_out > self.max_blocks),
                    "ADDRESS": (in_end > (1 << 32)) | (out_end > (1 << 32)) | (w_end > (1 << 32)) | (p_end > (1 << 32)),
                    "WEIGHT_BUFFER": d.WEIGHT_BUFFER & (out["w_fill"] > self.wbuf_words),
                }
                assert sorted(regs.ERROR_CODE[name] for name in conds) == list(range(1, len(regs.ERRORS)))
                m.d.sync += [failed[regs.ERROR_CODE[name] - 1].eq(c) for name, c in conds.items()]
                m.next = "CHECK_CODE"
            with m.State("CHECK_CODE"):
                m.d.sync += code.eq(0)
                for i in reversed(range(len(failed))):      # the lowest code wins
                    with m.If(failed[i]):
                        m.d.sync += code.eq(i + 1)
                m.next = "CHECK_END"
            with m.State("CHECK_END"):
                m.d.comb += [self.done.eq(1), self.error.eq(code)]
                m.next = "IDLE"
        return m
