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
    weight words (bytes 0 to 7: channels 8 cb .. 8 cb + 7) are in registers; a window's last column
    waits until they are all in, and until the window register is free. The control position also
    names the next block's weights (``wnext``, unless it is the run's last): they are requested
    once the block's own are, into a second set of registers, which the next control position
    copies in a cycle, so a block's windows do not wait for its weights. The next control
    position need not wait for them all to arrive: it takes those in, the rest arrive straight
    into the block's registers (its first window waits for them), and it asks for the following
    block's at once; it waits only until the words asked before it have all been asked for. The
    walk names as next the block its next control position is (the sequencer's order); a control
    position that follows none named (the run's first) asks for its own words first, once
    nothing is in flight.

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
    w_wait : Out(1)
        The block being walked does not have all its weight words yet (a register).
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
            "w_wait": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d, dv = self.desc, self.derived
        k, dense, khkw = d.KERNEL, d.DENSE_MODE, dv.khkw
        cell = data.StructLayout({"values": data.ArrayLayout(8, BLOCK), "mask": BLOCK})

        q = self.i.payload
        # the weights: k k words' bytes 0..7 of the block being walked (cur) and of the next one
        # (nxt, prefetched while this block's windows are formed: the control position names the
        # next block, ``wnext``). A control position whose block is the one prefetched copies it
        # in a cycle; otherwise (the run's first, or no prefetch) it requests its own words first.
        # The words arrive in the order asked: cur's words, then nxt's. The control position of
        # the prefetched block moves nxt into cur with its count: words still in flight then
        # arrive into cur.
        wcur = [Signal(8 * BLOCK, name=f"dww{t}") for t in range(DW_TAPS)]
        wnxt = [Signal(8 * BLOCK, name=f"dwwn{t}") for t in range(DW_TAPS)]
        nxt_req = Signal()                   # the next block's words are asked for (the walk named it)
        nxt_ok = Signal()                    # wnxt holds all of them
        rq_addr = Signal(32)                 # the words still to request: a run, then maybe a second
        rq_left = Signal(range(DW_TAPS + 1))
        rq2_addr = Signal(32)
        rq2_pend = Signal()
        cur_left = Signal(range(DW_TAPS + 1))    # words still to arrive for cur, for nxt
        nxt_left = Signal(range(DW_TAPS + 1))
        cur_i = Signal(range(DW_TAPS))
        nxt_i = Signal(range(DW_TAPS))
        w_full = Signal()                    # cur holds all k k words (cur_left == 0), a register
        w_idle = Signal(init=1)              # nothing to request or to arrive, a register
        m.d.comb += [self.w_addr.valid.eq(rq_left != 0), self.w_addr.payload.eq(rq_addr),
                     self.w.ready.eq(~w_idle), self.w_wait.eq(~w_full)]
        w_ask = Signal()
        w_got = Signal()
        m.d.comb += [w_ask.eq(self.w_addr.valid & self.w_addr.ready), w_got.eq(self.w.valid & self.w.ready)]
        with m.If(w_ask):
            with m.If((rq_left == 1) & rq2_pend):
                m.d.sync += [rq_addr.eq(rq2_addr), rq_left.eq(khkw), rq2_pend.eq(0)]
            with m.Else():
                m.d.sync += [rq_addr.eq(rq_addr + 1), rq_left.eq(rq_left - 1)]
        with m.If(w_got):
            with m.If(~w_full):
                for t in range(DW_TAPS):
                    with m.If(cur_i == t):
                        m.d.sync += wcur[t].eq(self.w.payload[:8 * BLOCK])
                m.d.sync += [cur_i.eq(cur_i + 1), cur_left.eq(cur_left - 1), w_full.eq(cur_left == 1),
                             w_idle.eq((cur_left == 1) & (nxt_left == 0))]
            with m.Else():
                for t in range(DW_TAPS):
                    with m.If(nxt_i == t):
                        m.d.sync += wnxt[t].eq(self.w.payload[:8 * BLOCK])
                m.d.sync += [nxt_i.eq(nxt_i + 1), nxt_left.eq(nxt_left - 1), nxt_ok.eq(nxt_left == 1),
                             w_idle.eq(nxt_left == 1)]

        o_valid = self.o.valid
        o_free = Signal()
        m.d.comb += o_free.eq(~o_valid | self.o.ready)
        # a window's last column waits for the weights and the window register; a control
        # position, until the words asked before it have all been asked for (the prefetched
        # block's) or, for the run's first, until none is in flight
        asked = Signal()
        m.d.comb += asked.eq((rq_left == 0) & ~rq2_pend)
        m.d.comb += self.i.ready.eq(Mux(q.wstart, Mux(nxt_req, asked, w_idle), ~q.last | (o_free & w_full)))
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
                m.d.comb += [slices[j].x[t].eq(tc.values[j]), slices[j].w[t].eq(wcur[t][8 * j:8 * j + 8])]

        # the counters: per-tap operand counts registered with the window, summed a cycle later
        tap_ops = [Signal(range(BLOCK + 1), name=f"dwops{t}") for t in range(DW_TAPS)]
        ops_valid = Signal()
        avail = Signal(range(BLOCK * DW_TAPS + 1))   # k k x the block's real channels
        m.d.sync += [ops_valid.eq(0), self.macs.eq(0), self.skipped.eq(0)]
        with m.If(take):
            with m.If(q.wstart):
                m.d.sync += avail.eq(functools.reduce(operator.add, [Mux(q.chmask[j], khkw, 0) for j in range(BLOCK)]))
                with m.If(nxt_req):              # the prefetched block: moved in, the next one asked
                    # cur is full here (the block before's windows needed it), so a word arriving
                    # in this cycle is nxt's: it goes to cur with the rest
                    for t in range(DW_TAPS):
                        m.d.sync += wcur[t].eq(Mux(w_got & (nxt_i == t), self.w.payload[:8 * BLOCK], wnxt[t]))
                    full = nxt_ok | (w_got & (nxt_left == 1))
                    m.d.sync += [cur_left.eq(nxt_left - w_got), cur_i.eq(nxt_i + w_got), w_full.eq(full),
                                 w_idle.eq(full & ~q.wnext_valid),
                                 rq_addr.eq(q.wnext), rq_left.eq(Mux(q.wnext_valid, khkw, 0))]
                with m.Else():                   # its own words first, then the next block's
                    m.d.sync += [rq_addr.eq(q.wbase), rq_left.eq(khkw), rq2_addr.eq(q.wnext), rq2_pend.eq(q.wnext_valid),
                                 cur_left.eq(khkw), cur_i.eq(0), w_full.eq(0), w_idle.eq(0)]
                m.d.sync += [nxt_req.eq(q.wnext_valid), nxt_ok.eq(0), nxt_i.eq(0),
                             nxt_left.eq(Mux(q.wnext_valid, khkw, 0))]
                with m.If(q.wnext_valid):
                    m.d.sync += w_idle.eq(0)
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
            m.d.sync += [o_valid.eq(0), rq_left.eq(0), rq2_pend.eq(0), cur_left.eq(0), nxt_left.eq(0),
                         nxt_ok.eq(0), nxt_req.eq(0), w_full.eq(0), w_idle.eq(1)]
        return m
