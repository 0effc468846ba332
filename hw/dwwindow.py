"""The depthwise window assembler: columns of line-buffer words of one channel block into k x k
windows (k <= 3) for the decoupled depthwise lanes (hw/dwlanes.py), each lane's slice with its
channel's weights. A column read once serves every window it is in (k of them along a row), so a
stride-1 window costs one column (k words, read together from the line buffer and its copies)
instead of k x k reads."""
import functools
import operator

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, DW_K_MAX, DW_TAPS
from .arith import popcount
from .dwlanes import Slice
from .ports import Descriptor
from .scanner import Position
from .setup import Derived

K_MAX = DW_K_MAX


class DwWindow(wiring.Component):
    """Columns of words -> windows.

    The positions come from the sequencer's depthwise column walk: for each output row and
    channel block, first a control position (``wstart``: the block's weights start at ``wbase``;
    it carries no word), then the input columns the row's windows span, one position each with the
    column's words (row 0 in ``word`` / ``inb``, rows 1 and 2 in ``words_dw`` / ``inb_dw``);
    ``last`` says a window ends there (the column is its rightmost). The assembler keeps the last
    three columns in registers; when a window ends it forms the eight lanes' slices (tap ky k + kx:
    column 3 - k + kx, row ky) with the weights, and hands them on in a register. The block's k k
    weight words (bytes 0 to 7: channels 8 cb .. 8 cb + 7) are requested as its control position is
    taken, into registers; a window's last column waits until they are all in, and until the
    window register is free.

    A word's mask is its own inside the input, none for padding (dense mode: the block's real
    channels, whose zero values are then multiplied).

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer (KERNEL, DENSE_MODE; khkw).
    clear : In(1)
        The run's first cycle.
    i : In(stream.Signature(Position(lanes)))
        The positions.
    w_addr : Out(stream.Signature(32)), w : In(stream.Signature(8 * lanes))
        The weight words' addresses and the words, in order.
    o : Out(stream.Signature(data.ArrayLayout(Slice(), 8)))
        The windows, in order.
    macs, skipped : Out(range(8 * 9 + 1)), Out(range(8 * 9 + 1))
        The operands of the window handed on two cycles before, and the real taps without one
        (registered counter increments).
    """

    def __init__(self, lanes):
        if lanes < BLOCK:
            raise ValueError(f"lanes P={lanes}: the depthwise window assembler serves P >= 8 (a channel block a window)")
        self.P = lanes
        super().__init__({
            "desc": In(Descriptor()), "derived": In(Derived(lanes)), "clear": In(1),
            "i": In(stream.Signature(Position(lanes))),
            "w_addr": Out(stream.Signature(32)), "w": In(stream.Signature(8 * lanes)),
            "o": Out(stream.Signature(data.ArrayLayout(Slice(), BLOCK))),
            "macs": Out(range(BLOCK * DW_TAPS + 1)), "skipped": Out(range(BLOCK * DW_TAPS + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        d, dv = self.desc, self.derived
        k, dense, khkw = d.KERNEL, d.DENSE_MODE, dv.khkw
        cell = data.StructLayout({"values": data.ArrayLayout(8, BLOCK), "mask": BLOCK})

        # the weights: k k words' bytes 0..7, requested from the control position on
        wreg = [Signal(8 * BLOCK, name=f"dww{t}") for t in range(DW_TAPS)]
        wf_addr = Signal(32)
        wf_left = Signal(range(DW_TAPS + 1))
        w_have = Signal(range(DW_TAPS + 1))
        w_full = Signal()                    # all k k words are in (w_have == k k), a register
        m.d.comb += [self.w_addr.valid.eq(wf_left != 0), self.w_addr.payload.eq(wf_addr),
                     self.w.ready.eq(~w_full)]
        with m.If(self.w_addr.valid & self.w_addr.ready):
            m.d.sync += [wf_addr.eq(wf_addr + 1), wf_left.eq(wf_left - 1)]
        with m.If(self.w.valid & self.w.ready):
            for t in range(DW_TAPS):
                with m.If(w_have == t):
                    m.d.sync += wreg[t].eq(self.w.payload[:8 * BLOCK])
            m.d.sync += [w_have.eq(w_have + 1), w_full.eq(w_have + 1 == khkw)]

        q = self.i.payload
        o_valid = self.o.valid
        o_free = Signal()
        m.d.comb += o_free.eq(~o_valid | self.o.ready)
        # a window's last column waits for the weights and the window register
        m.d.comb += self.i.ready.eq(~q.last | (o_free & w_full))
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        with m.If(o_valid & self.o.ready):
            m.d.sync += o_valid.eq(0)

        # the column's cells: a word's values and mask inside the input; padding (or a row below
        # k) has none, dense mode the block's real channels
        rows_in = [(q.word, q.inb)] + [(q.words_dw[r], q.inb_dw[r]) for r in range(K_MAX - 1)]
        new_col = [Signal(cell, name=f"dwnew{r}") for r in range(K_MAX)]
        for r, (w, inb) in enumerate(rows_in):
            m.d.comb += [new_col[r].values.eq(Mux(inb, w.values.as_value(), 0)),
                         new_col[r].mask.eq(Mux(inb, w.mask, Mux(dense, q.chmask, 0)))]
        win = [[Signal(cell, name=f"dwwin{c}_{r}") for r in range(K_MAX)] for c in range(K_MAX)]
        # the window with this column in: columns 1 and 2 move left, the new one enters on the right
        nxt = [win[1], win[2], new_col]
        # the lanes' slices: tap t = ky k + kx at column 3 - k + kx, row ky (k = 1, 2 or 3)
        slices = Signal(data.ArrayLayout(Slice(), BLOCK))
        tap_cells = []
        for t in range(DW_TAPS):
            tc = Signal(cell, name=f"dwtap{t}")
            for kk in range(1, K_MAX + 1):
                if t < kk * kk:
                    r, c = divmod(t, kk)
                    with m.If(k == kk):
                        m.d.comb += tc.eq(nxt[K_MAX - kk + c][r])
            tap_cells.append(tc)
        for j in range(BLOCK):
            m.d.comb += [slices[j].mask.eq(Cat(tc.mask[j] for tc in tap_cells))]
            for t, tc in enumerate(tap_cells):
                m.d.comb += [slices[j].x[t].eq(tc.values[j]), slices[j].w[t].eq(wreg[t][8 * j:8 * j + 8])]

        # the counters: per-tap operand counts registered with the window, summed a cycle later
        tap_ops = [Signal(range(BLOCK + 1), name=f"dwops{t}") for t in range(DW_TAPS)]
        ops_valid = Signal()
        avail = Signal(range(BLOCK * DW_TAPS + 1))   # k k x the block's real channels
        m.d.sync += [ops_valid.eq(0), self.macs.eq(0), self.skipped.eq(0)]
        with m.If(take):
            with m.If(q.wstart):
                m.d.sync += [wf_addr.eq(q.wbase), wf_left.eq(khkw), w_have.eq(0), w_full.eq(0),
                             avail.eq(functools.reduce(operator.add, [Mux(q.chmask[j], khkw, 0) for j in range(BLOCK)]))]
            with m.Else():
                for c in range(K_MAX):
                    m.d.sync += [win[c][r].eq(nxt[c][r]) for r in range(K_MAX)]
                with m.If(q.last):
                    m.d.sync += [o_valid.eq(1), self.o.payload.eq(slices), ops_valid.eq(1)]
                    m.d.sync += [tap_ops[t].eq(popcount(tc.mask, BLOCK)) for t, tc in enumerate(tap_cells)]
        total = Signal(range(BLOCK * DW_TAPS + 1))
        m.d.comb += total.eq(functools.reduce(operator.add, tap_ops))
        with m.If(ops_valid):
            m.d.sync += [self.macs.eq(total), self.skipped.eq(avail - total)]
        with m.If(self.clear):
            m.d.sync += [o_valid.eq(0), wf_left.eq(0), w_full.eq(0), w_have.eq(0)]
        return m
