"""The loader: the input feature map into the line buffer, a word (one channel block at one
pixel) at a time, in row order, as far ahead of the sequencer as the line buffer's free rows let
it. Compressed input: the bitmap byte, then only the values it marks (zero-value compression, so
an absent value costs no read); dense input: the eight values. Each word's mask marks the values
with |x| > EPS_IN (all channels below C in dense mode): the front end's zero detect."""
from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK
from .arith import lowest_set, popcount
from .ports import Descriptor
from .scanner import Word
from .setup import Derived


class Loader(wiring.Component):
    """Feature map -> line buffer.

    The line buffer is a ring of R rows (Derived.rows) of IN_W x ceil(IN_C / 8) words; the loader
    fills row slots in order and waits for a free slot (the sequencer releases rows it has
    finished with, ``rows_released``); ``rows_loaded`` tells the sequencer how far it may read.

    A word is stored in two cycles. The cycle that completes it (L_BITMAP with an empty bitmap,
    or L_VALUES with its last value) only raises the line-buffer write, whose address and data
    registers load every cycle. The next cycle, always L_STEP, moves the counters to the next
    word: their enables then come from the state register and the counters' own "last"
    registers, not from the value just received. Compressed blocks are read through a table of
    block pointers (block RAM: each block's next byte), read two cycles ahead and registered; with
    one channel block (C <= 8) the loader keeps the pointer itself.

    Parameters
    ----------
    linebuf_depth : int
        The line buffer's words.
    max_blocks : int
        The block-pointer table's depth: input channel blocks at most.

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(...))
        The layer (IN_C, IN_H, IN_W, IN_LAYOUT, DENSE_MODE, EPS_IN, IN_BASE; cb_in, row_words,
        in_stride, rows, neg_eps_in).
    run, run_start : In(1), In(1)
        A run is on; its first cycle.
    init_en, init_addr, init_data : In(1), In(range(max_blocks)), In(32)
        A write to the block-pointer table (the control stage's, before the run: IN_BASE + cb *
        block stride). It takes the table's port over the loader's own.
    fm_addr : Out(stream.Signature(32))
        Feature-map byte addresses, in order.
    fm_data : In(stream.Signature(8))
        The bytes read, in address order.
    lb_w_en, lb_w_addr, lb_w_data : Out(1), Out(range(linebuf_depth)), Out(Word())
        The line buffer's write port (registers).
    rows_loaded : Out(16)
        Input rows completely in the line buffer (from the cycle after their last word's write).
    rows_released : In(16)
        Input rows the sequencer no longer needs.
    bitmap_byte, value_byte : Out(1), Out(1)
        A bitmap byte, a value byte arrives (the counters' increments).
    """

    def __init__(self, lanes, *, linebuf_depth, max_blocks):
        self.P, self.linebuf_depth, self.max_blocks = lanes, linebuf_depth, max_blocks
        super().__init__({
            "desc": In(Descriptor()), "derived": In(Derived(lanes)), "run": In(1), "run_start": In(1),
            "init_en": In(1), "init_addr": In(range(max_blocks)), "init_data": In(32),
            "fm_addr": Out(stream.Signature(32)), "fm_data": In(stream.Signature(8)),
            "lb_w_en": Out(1), "lb_w_addr": Out(range(linebuf_depth)), "lb_w_data": Out(Word()),
            "rows_loaded": Out(16), "rows_released": In(16), "bitmap_byte": Out(1), "value_byte": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d, dv = self.desc, self.derived
        C, H, W = d.IN_C, d.IN_H, d.IN_W
        in_cmp, dense, eps_in = d.IN_LAYOUT, d.DENSE_MODE, d.EPS_IN
        cb_in, row_words, in_stride, rows, neg_eps_in = dv.cb_in, dv.row_words, dv.in_stride, dv.rows, dv.neg_eps_in
        run, run_start = self.run, self.run_start

        m.submodules.in_ptr = in_ptr = Memory(shape=32, depth=self.max_blocks, init=[])
        ip_w = in_ptr.write_port()
        # synchronous (block RAM), and registered again (ip_q) next to the loader: addressed two
        # cycles ahead. With one channel block (C <= 8) the loader keeps the pointer itself (l_next)
        ip_r = in_ptr.read_port()
        # the loader's writes to the table are registered (they land a cycle after the store; the
        # table's entry is read again a word later at the earliest); the control stage's directly
        ipw_en = Signal()
        ipw_addr = Signal.like(ip_w.addr)
        ipw_data = Signal(32)
        m.d.comb += [ip_w.addr.eq(ipw_addr), ip_w.data.eq(ipw_data), ip_w.en.eq(ipw_en)]
        with m.If(self.init_en):
            m.d.comb += [ip_w.addr.eq(self.init_addr), ip_w.data.eq(self.init_data), ip_w.en.eq(1)]

        rows_loaded = self.rows_loaded
        rows_released = self.rows_released
        ly = Signal(16)
        lx = Signal(16)
        lcb = Signal(14)
        l_slot_base = Signal(32)             # line-buffer word of the row being loaded
        l_slot = Signal(5)
        l_word = Signal(32)                  # word within the row
        l_pix8 = Signal(40)                  # (ly * W + lx) * 8
        l_cboff = Signal(40)                 # lcb * in_stride
        l_issue = Signal(4)
        l_recv = Signal(4)
        l_need = Signal(4)                   # values to read for this word
        recv_last = Signal()                 # the next value received is the word's last: l_recv + 1 == l_need
        l_remain = Signal(8)                 # compressed: bitmap lanes still to receive
        l_first = Signal()                   # compressed: L_VALUES's first cycle (l_need, recv_last not yet set)
        l_vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        l_big = Signal(8)                    # lanes of l_vals with |value| > EPS_IN
        l_ptr = Signal(32)
        lanes_valid = Signal(8)              # channels 8*lcb + i < C, kept in step with lcb
        lcb_last = Signal()                  # lcb + 1 >= cb_in, kept in step with lcb
        lx_last = Signal()                   # lx + 1 >= W
        slot_last = Signal()                 # l_slot + 1 == rows
        blk_left = Signal(signed(18))        # C - 8*lcb: channels from this block on

        def set_block(left):                 # lcb moves to the block with `left` channels from it on
            m.d.sync += [blk_left.eq(left)] + [lanes_valid[i].eq(left > i) for i in range(BLOCK)]

        # a word is stored in two cycles (the class's docstring)
        lbw_en, lbw_addr, lbw_data = self.lb_w_en, self.lb_w_addr, self.lb_w_data
        # the value received this cycle (L_VALUES), placed in its lane, and the lanes above EPS_IN
        in_values = Signal()
        take = Signal()                      # a value arrives in L_VALUES
        m.d.comb += take.eq(in_values & self.fm_data.valid)
        lane = Signal(3)                     # compressed: the lowest remaining bitmap lane
        m.d.comb += lane.eq(Mux(in_cmp, lowest_set(m, l_remain, BLOCK, "l_low"), l_recv[:3]))
        vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        big = Signal(8)
        v = self.fm_data.payload.as_signed()
        m.d.comb += vals.eq(l_vals)
        with m.If(take):
            m.d.comb += vals[lane].eq(self.fm_data.payload)
        # |v| > EPS_IN as two compares side by side (no absolute value in front)
        m.d.comb += big.eq(l_big | Mux(take & ((v > eps_in) | (v < neg_eps_in)), Const(1, 8) << lane, 0))
        m.d.sync += [lbw_en.eq(0), lbw_addr.eq(l_slot_base + l_word), lbw_data.values.eq(vals),
                     lbw_data.mask.eq(lanes_valid & Mux(dense, 0xFF, big))]
        # the block's pointer for L_WORD, ip_q, is the table's entry addressed two cycles before:
        # the block lcb moves to next while a word is received and stored (L_BITMAP, L_VALUES) and
        # in L_STEP; lcb itself in L_ROW and L_WORD; block 0 in L_IDLE
        ahead = Signal()
        l_idle = Signal()
        ip_q = Signal(32)
        m.d.comb += ip_r.addr.eq(Mux(ahead, Mux(lcb_last, 0, lcb + 1), Mux(l_idle, 0, lcb)))
        m.d.sync += ip_q.eq(ip_r.data)
        # with one channel block, the block read next is the one just stored, whose new pointer
        # the table has only from the store's cycle on: the loader keeps that pointer instead.
        # ipw_data is the pointer a store writes (formed every cycle; L_STEP keeps the store's)
        cb_one = Signal()                    # cb_in == 1, set at the run's start
        in_bitmap = Signal()
        l_next = Signal(32)
        m.d.sync += [ipw_en.eq(0), ipw_addr.eq(lcb), ipw_data.eq(Mux(in_bitmap, l_ptr + 1, l_ptr + l_need))]
        l_block_ptr = Mux(cb_one, l_next, ip_q)

        # the line-buffer write lands in L_STEP, and rows_loaded covers a row from the cycle after
        # L_STEP: the sequencer never reads a row before its last word is in the buffer.
        def next_word():                     # L_STEP: the counters move to the next word
            m.d.sync += l_word.eq(l_word + 1)
            with m.If(~lcb_last):
                m.d.sync += [lcb.eq(lcb + 1), lcb_last.eq(lcb + 2 >= cb_in), l_cboff.eq(l_cboff + in_stride)]
                set_block(blk_left - BLOCK)
            with m.Else():
                m.d.sync += [lcb.eq(0), lcb_last.eq(cb_in <= 1), l_cboff.eq(0), l_pix8.eq(l_pix8 + BLOCK)]
                set_block(C)
                with m.If(~lx_last):
                    m.d.sync += [lx.eq(lx + 1), lx_last.eq(lx + 2 >= W)]
                with m.Else():
                    m.d.sync += [lx.eq(0), lx_last.eq(W <= 1), ly.eq(ly + 1), rows_loaded.eq(ly + 1), l_word.eq(0)]
                    with m.If(slot_last):
                        m.d.sync += [l_slot.eq(0), slot_last.eq(rows <= 1), l_slot_base.eq(0)]
                    with m.Else():
                        m.d.sync += [l_slot.eq(l_slot + 1), slot_last.eq(l_slot + 2 >= rows),
                                     l_slot_base.eq(l_slot_base + row_words)]

        # rows the line buffer can take, rows_released + rows, registered: a cycle late it is at
        # most too small (rows_released only grows during a layer), which only delays a row
        row_limit = Signal(17)
        m.d.sync += row_limit.eq(Mux(run_start, 0, rows_released) + rows)
        # L_ROW's decisions as registers (ly holds from L_SETTLE on)
        l_rows_done = Signal()               # ly == H
        l_row_free = Signal()                # ly < row_limit
        m.d.sync += [l_rows_done.eq(ly == H), l_row_free.eq(ly < row_limit)]

        with m.FSM():
            with m.State("L_IDLE"):
                m.d.comb += l_idle.eq(1)
                with m.If(run_start):
                    set_block(C)
                    m.d.sync += [lcb_last.eq(cb_in <= 1), lx_last.eq(W <= 1), slot_last.eq(rows <= 1)]
                    m.d.sync += [ly.eq(0), lx.eq(0), lcb.eq(0), l_slot.eq(0), l_slot_base.eq(0), l_word.eq(0),
                                 l_pix8.eq(0), l_cboff.eq(0), rows_loaded.eq(0),
                                 cb_one.eq(cb_in == 1), l_next.eq(d.IN_BASE)]
                    m.next = "L_SETTLE"
            with m.State("L_SETTLE"):        # ly settles: L_ROW's compares are registered
                m.next = "L_ROW"
            with m.State("L_ROW"):
                with m.If(~run):
                    m.next = "L_IDLE"
                with m.Elif(l_rows_done):
                    pass
                with m.Elif(l_row_free):
                    m.next = "L_WORD"
            with m.State("L_WORD"):
                m.d.sync += [l_issue.eq(0), l_recv.eq(0), l_vals.eq(0), l_big.eq(0), l_first.eq(0)]
                with m.If(in_cmp):
                    m.d.comb += [self.fm_addr.valid.eq(1), self.fm_addr.payload.eq(l_block_ptr)]
                    with m.If(self.fm_addr.ready):
                        m.d.sync += l_ptr.eq(l_block_ptr)
                        m.next = "L_BITMAP"
                with m.Else():
                    m.d.sync += [l_need.eq(BLOCK), recv_last.eq(0), l_ptr.eq(d.IN_BASE + l_cboff + l_pix8)]
                    m.next = "L_VALUES"
            with m.State("L_BITMAP"):
                m.d.comb += [self.fm_data.ready.eq(1), ahead.eq(1), in_bitmap.eq(1)]
                with m.If(self.fm_data.valid):
                    bm = self.fm_data.payload & lanes_valid
                    # the byte arrives from across the die: it is only registered here; l_need and
                    # recv_last follow from it in L_VALUES's first cycle
                    m.d.sync += [l_remain.eq(bm), l_first.eq(1),
                                 l_ptr.eq(l_ptr + 1), l_issue.eq(0), l_recv.eq(0)]
                    m.d.comb += self.bitmap_byte.eq(1)
                    with m.If(bm == 0):
                        # an empty word: l_vals and l_big are 0 (cleared in L_WORD)
                        m.d.sync += lbw_en.eq(1)
                        m.d.sync += ipw_en.eq(1)
                        m.next = "L_STEP"
                    with m.Else():
                        m.next = "L_VALUES"
            with m.State("L_VALUES"):
                # in the first cycle of a compressed word, the first value (the bitmap is not empty)
                # is requested, and its data cannot arrive before the next cycle
                m.d.comb += [self.fm_addr.valid.eq(l_first | (l_issue < l_need)), self.fm_addr.payload.eq(l_ptr + l_issue),
                             self.fm_data.ready.eq(1), in_values.eq(1), ahead.eq(1)]
                with m.If(l_first):
                    m.d.sync += [l_first.eq(0), l_need.eq(popcount(l_remain, 8)),
                                 recv_last.eq((l_remain & (l_remain - 1)) == 0)]
                with m.If(self.fm_addr.valid & self.fm_addr.ready):
                    m.d.sync += l_issue.eq(l_issue + 1)
                with m.If(self.fm_data.valid):
                    m.d.comb += self.value_byte.eq(1)
                    m.d.sync += [l_recv.eq(l_recv + 1), recv_last.eq(l_recv + 2 == l_need),
                                 l_vals.eq(vals), l_big.eq(big), l_remain.eq(l_remain & ~(Const(1, 8) << lane))]
                    with m.If(recv_last):
                        m.d.sync += lbw_en.eq(1)
                        with m.If(in_cmp):
                            m.d.sync += ipw_en.eq(1)
                        m.next = "L_STEP"
            with m.State("L_STEP"):          # the word just stored: next word, or a new row
                m.d.comb += ahead.eq(1)
                m.d.sync += l_next.eq(ipw_data)
                next_word()
                with m.If(lcb_last & lx_last):
                    m.next = "L_SETTLE"      # a new row must wait for a free line-buffer slot
                with m.Else():
                    m.next = "L_WORD"

        return m
