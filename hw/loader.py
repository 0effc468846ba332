"""The loader: the input feature map into the line buffer, up to a word (one channel block at one
pixel) a cycle, as far ahead of the sequencer as the line buffer's free rows let it.

A block's records for one input row are contiguous in memory (each channel block is a plane,
docs/fmformat.md), so the loader streams the row one plane at a time: a *segment* is one input row
of one channel block, W records read as a run of beats of the feature-map port (``fm_bytes`` bytes
a beat) from the plane's pointer. The beats enter a byte window; each cycle the record at its head
(compressed: the bitmap byte and the values it marks, zero-value compression, so an absent value
costs no port bandwidth; dense: eight values) leaves as a line-buffer word with its mask, the
values with |x| > EPS_IN (all channels below C in dense mode): the front end's zero detect."""
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, DEFAULT_FM_WAYS, FM_AHEAD, check_port_bytes, check_ways, fm_window_bytes
from .arith import popcount
from .ports import Descriptor
from .scanner import Word
from .setup import Derived


class Loader(wiring.Component):
    """Feature map -> line buffer.

    The line buffer is a ring of R rows (Derived.rows) in a bank per way (hw/linebuf.py), IN_W x
    cb_lb words a row in each (block cb of pixel lx: word lx cb_lb + cb // ways of its row slot in
    bank cb % ways; cb_lb = ceil(ceil(IN_C / 8) / ways)); the loader fills row slots in order and
    waits for a free slot (the sequencer releases rows it has finished with, ``rows_released``);
    ``rows_loaded`` tells the sequencer how far it may read.

    Each of the ``ways`` ways (one or two) parses its own segments, way j the blocks j, j + ways,
    ... of each row, and writes its own bank, so that two ways write two words a cycle. A row
    starts in every way at once and is loaded when all have finished it. With two ways their
    requests share the port (the one not served last goes first when both ask), and each beat goes
    into a queue of ``ahead`` places of the way that asked for it: a way asks only with a place
    free there, so the port's data is always taken and neither way's window holds up the other.

    A segment (input row ly, channel block cb) starts at the plane's pointer: compressed, the
    block-pointer table's entry for cb (block RAM: each block's next record; the segment's end
    writes it back); dense, IN_BASE + cb stride + 8 W ly. The fetcher requests the beats from the
    one holding that byte on, at most ``ahead`` in flight, up to the segment's end if it is known
    (dense: 8 W bytes) or else its largest possible end (compressed: the next record's byte plus
    9 bytes a record left, falling as the records are parsed). The next segment of the row is
    prepared while one streams (its table entry, start and beats, in registers), so that it
    starts in the cycle after the last record. A beat enters a
    register (Q; from the segment's first byte on, in its first beat) with each byte's record
    length and |x| > EPS_IN flag, then a second register (P) as wide as the window, shifted to
    the window's fill level in the next cycle, and then the window, with an OR (a beat is taken
    while the window has room for it and the beats in Q and P). The record at the window's head
    leaves once the window holds all of it; its lanes are placed in the next cycle (X) and the
    word written to the line buffer in the cycle after. When the segment's W-th record has left,
    the window is cleared and the beats still in flight are dropped as they arrive: a compressed
    segment's read-ahead, which ``port_beat`` counts with the rest (the feature-map port's traffic
    is at least the records' bytes; the excess is the first and last beats' bytes outside the
    segment and the beats read ahead past its end).

    Parameters
    ----------
    linebuf_depth : int
        The line buffer's words.
    max_blocks : int
        The block-pointer table's depth: input channel blocks at most.
    fm_bytes : int
        Bytes a beat of the feature-map port (1, 2, 4, 8 or 16).
    ahead : int
        Beats in flight at most, a way (covers the port's latency).
    ways : int
        Segment parsers (1 or 2), and the line buffer's banks.

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(...))
        The layer (IN_C, IN_H, IN_W, IN_LAYOUT, DENSE_MODE, EPS_IN, IN_BASE; cb_in, row_words,
        in_stride, rows, neg_eps_in).
    load, load_start : In(1), In(1)
        The loader's phase (from the control stage's PARAMS to the run's end: the first rows load
        while the parameters and weights do); its first cycle.
    seq_start : In(1)
        The sequencer's run starts: ``rows_released`` is the run's from the cycle after (until
        then, from ``load_start`` on, no row counts as released).
    init_en, init_addr, init_data : In(1), In(range(max_blocks)), In(32)
        A write to the block-pointer table (the control stage's, before the run: IN_BASE + cb *
        block stride; entry cb // ways of way cb % ways's table). It takes the table's port over
        the loader's own.
    fm_addr : Out(stream.Signature(32))
        Beat addresses (byte address / fm_bytes), in order.
    fm_data : In(stream.Signature(8 * fm_bytes))
        The beats read, in order; byte i of a beat (bits 8i+7..8i) is the beat's byte address + i.
    lb_w_en, lb_w_addr, lb_w_data : Out(ways), Out(ArrayLayout(range(linebuf_depth // ways), ways)), Out(ArrayLayout(Word(), ways))
        The line buffer's write ports, a bank each (registers).
    rows_loaded : Out(16)
        Input rows completely in the line buffer (from the cycle after their last word's write).
    rows_released : In(16)
        Input rows the sequencer no longer needs.
    bitmap_byte, value_bytes, port_beat : Out(range(ways + 1)), Out(range(8 ways + 1)), Out(1)
        The records' bitmap bytes and value bytes taken in the cycle before (the counters'
        increments, registers); a beat arrived in the cycle before.
    busy : Out(1)
        Beats are still in flight (the run may not end before they have arrived).
    """

    def __init__(self, lanes, *, linebuf_depth, max_blocks, fm_bytes=1, ahead=FM_AHEAD, ways=DEFAULT_FM_WAYS):
        check_port_bytes("fm_bytes", fm_bytes)
        check_ways(ways)
        self.P, self.linebuf_depth, self.max_blocks = lanes, linebuf_depth, max_blocks
        self.B, self.ahead, self.ways = fm_bytes, ahead, ways
        self.bank_depth, self.table_depth = linebuf_depth // ways, -(-max_blocks // ways)
        self.window = fm_window_bytes(fm_bytes)
        super().__init__({
            "desc": In(Descriptor()), "derived": In(Derived(lanes)), "load": In(1), "load_start": In(1), "seq_start": In(1),
            "init_en": In(1), "init_addr": In(range(max_blocks)), "init_data": In(32),
            "fm_addr": Out(stream.Signature(32)), "fm_data": In(stream.Signature(8 * fm_bytes)),
            "lb_w_en": Out(ways), "lb_w_addr": Out(data.ArrayLayout(range(self.bank_depth), ways)),
            "lb_w_data": Out(data.ArrayLayout(Word(), ways)),
            "rows_loaded": Out(16), "rows_released": In(16),
            "bitmap_byte": Out(range(ways + 1)), "value_bytes": Out(range(BLOCK * ways + 1)), "port_beat": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B, N, ahead = self.B, self.ways, self.ahead
        d, dv = self.desc, self.derived
        C, H, W = d.IN_C, d.IN_H, d.IN_W
        cb_in, row_words, rows = dv.cb_in, dv.row_words, dv.rows
        load, load_start = self.load, self.load_start

        rows_loaded, rows_released = self.rows_loaded, self.rows_released
        # rows whose last record has been parsed; rows_loaded follows it a cycle later, once that
        # record's word is in the line buffer (the parser's X step and the write register)
        rows_in = Signal(16)
        m.d.sync += rows_loaded.eq(rows_in)
        ly = Signal(16)
        l_slot = Signal(5)
        l_slot_base = Signal(32)             # a bank's line-buffer word of the row being loaded
        l_row8 = Signal(40)                  # 8 W ly: a dense plane's row offset
        slot_last = Signal()                 # l_slot + 1 == rows
        seg_max = Signal(20)                 # a segment's largest size: 9 W compressed, 8 W dense

        # the row's start for every way (`go`) and each way's end of the row (`fin`, and `done`
        # from the cycle after until the next row starts)
        go = Signal()
        ways = [self._way(m, j, go, ly, l_slot_base, l_row8, seg_max) for j in range(N)]
        row_end = Signal()                   # every way has finished the row, or does in this cycle
        m.d.comb += row_end.eq(Cat(w["done"] | w["fin"] for w in ways).all())

        # the feature-map port
        if N == 1:
            w0 = ways[0]
            m.d.comb += [self.fm_addr.valid.eq(w0["req"].valid), self.fm_addr.payload.eq(w0["req"].payload),
                         w0["req"].ready.eq(self.fm_addr.ready),
                         w0["beat"].valid.eq(self.fm_data.valid), w0["beat"].payload.eq(self.fm_data.payload),
                         self.fm_data.ready.eq(w0["beat"].ready)]
        else:
            # the ways' requests share the port: a request presented and not taken is presented
            # again (`g_hold`), otherwise the way not served last goes first. Each way requests a
            # beat only with a place for it in its own beat queue (its `pending` counts the beats
            # requested and not yet taken from the queue, at most `ahead`), so the port's data
            # is always taken, each beat into the queue of the way that asked for it (`tags`, in
            # request order); no way's full window holds up the other's beats
            grant = Signal(range(N))
            g_last = Signal(range(N))
            g_hold = Signal()
            pick = Signal(range(N))
            m.d.comb += pick.eq(Mux(ways[0]["req"].valid & ways[1]["req"].valid, ~g_last, ways[1]["req"].valid))
            m.d.comb += grant.eq(Mux(g_hold, g_last, pick))
            m.d.sync += g_hold.eq(self.fm_addr.valid & ~self.fm_addr.ready)
            with m.If(self.fm_addr.valid):
                m.d.sync += g_last.eq(grant)
            m.d.comb += [self.fm_addr.valid.eq(Mux(grant, ways[1]["req"].valid, ways[0]["req"].valid)),
                         self.fm_addr.payload.eq(Mux(grant, ways[1]["req"].payload, ways[0]["req"].payload))]
            m.d.comb += [w["req"].ready.eq(self.fm_addr.ready & (grant == j)) for j, w in enumerate(ways)]
            m.submodules.tags = tags = SyncFIFO(width=1, depth=N * ahead)
            m.d.comb += [tags.w_en.eq(self.fm_addr.valid & self.fm_addr.ready), tags.w_data.eq(grant),
                         self.fm_data.ready.eq(1), tags.r_en.eq(self.fm_data.valid)]
            for j, w in enumerate(ways):
                m.submodules[f"beats{j}"] = q = SyncFIFO(width=8 * B, depth=ahead)
                m.d.comb += [q.w_en.eq(self.fm_data.valid & (tags.r_data == j)), q.w_data.eq(self.fm_data.payload),
                             w["beat"].valid.eq(q.r_rdy), w["beat"].payload.eq(q.r_data),
                             q.r_en.eq(w["beat"].valid & w["beat"].ready)]
        # a beat is counted a cycle after it arrives (from a register: the port's handshake is late)
        m.d.sync += self.port_beat.eq(self.fm_data.valid & self.fm_data.ready)
        m.d.comb += self.busy.eq(Cat(w["busy"] for w in ways).any() | self.port_beat)
        # the counters' increments, a cycle late from registers (from the record decision into the
        # counters' 32-bit adds, across the chip, it was the ULX3S's critical path at 89807ed:
        # 9.9 ns), and the line buffer's write ports, a way each
        m.d.sync += [self.bitmap_byte.eq(sum(w["bitmap"] for w in ways)),
                     self.value_bytes.eq(sum(w["values"] for w in ways))]
        for j, w in enumerate(ways):
            m.d.comb += [self.lb_w_en[j].eq(w["lb_en"]), self.lb_w_addr[j].eq(w["lb_addr"]),
                         self.lb_w_data[j].eq(w["lb_data"])]
        # the block-pointer tables' set-up writes (the control stage's, before the run): entry
        # cb // ways of way cb % ways's table
        for j, w in enumerate(ways):
            m.d.comb += [w["init_en"].eq(self.init_en & ((self.init_addr % N) == j if N > 1 else 1)),
                         w["init_addr"].eq(self.init_addr >> (N - 1)), w["init_data"].eq(self.init_data)]

        # rows the line buffer can take, rows_released + rows, registered: a cycle late it is at
        # most too small (rows_released only grows during a layer), which only delays a row.
        # Until the sequencer starts, rows_released is the run before's: none is released.
        seq_on = Signal()
        with m.If(load_start):
            m.d.sync += seq_on.eq(0)
        with m.Elif(self.seq_start):
            m.d.sync += seq_on.eq(1)
        row_limit = Signal(17)
        m.d.sync += row_limit.eq(Mux(seq_on & ~self.seq_start & ~load_start, rows_released, 0) + rows)
        l_rows_done = Signal()               # ly == H
        l_row_free = Signal()                # ly < row_limit
        m.d.sync += [l_rows_done.eq(ly == H), l_row_free.eq(ly < row_limit)]

        with m.FSM():
            with m.State("L_IDLE"):
                with m.If(load_start):
                    m.d.sync += [slot_last.eq(rows <= 1), ly.eq(0), l_slot.eq(0), l_slot_base.eq(0), l_row8.eq(0),
                                 rows_in.eq(0), rows_loaded.eq(0), seg_max.eq(Mux(d.IN_LAYOUT, (W << 3) + W, W << 3))]
                    m.next = "L_SETTLE"
            with m.State("L_SETTLE"):        # ly settles: L_ROW's compares are registered
                m.next = "L_ROW"
            with m.State("L_ROW"):
                with m.If(~load):
                    m.next = "L_IDLE"
                with m.Elif(l_rows_done):
                    pass
                with m.Elif(l_row_free):
                    m.d.comb += go.eq(1)
                    m.next = "L_LOAD"
            with m.State("L_LOAD"):          # the ways load the row's blocks
                with m.If(row_end):
                    # the row's last word is written in this cycle: it counts from the next
                    m.d.sync += [ly.eq(ly + 1), rows_in.eq(ly + 1), l_row8.eq(l_row8 + (W << 3))]
                    with m.If(slot_last):
                        m.d.sync += [l_slot.eq(0), slot_last.eq(rows <= 1), l_slot_base.eq(0)]
                    with m.Else():
                        m.d.sync += [l_slot.eq(l_slot + 1), slot_last.eq(l_slot + 2 >= rows),
                                     l_slot_base.eq(l_slot_base + row_words)]
                    m.next = "L_SETTLE"   # a new row must wait for a free line-buffer slot
        return m

    def _way(self, m, j, go, ly, l_slot_base, l_row8, seg_max):
        """Way j: the channel blocks j, j + ways, ... of each row, a segment after another, into
        line-buffer bank j (word lx cb_lb + cb // ways of the row's slot). Its signals, for the
        loader: `req` (beat addresses) and `beat` (the beats, in order), `fin` (its row's last
        segment ends) and `done`, its counter increments and its bank's write port."""
        B, CQ, N, ahead = self.B, self.window, self.ways, self.ahead
        sh = B.bit_length() - 1
        d, dv = self.desc, self.derived
        C, W = d.IN_C, d.IN_W
        in_cmp, dense, eps_in = d.IN_LAYOUT, d.DENSE_MODE, d.EPS_IN
        cb_in, cb_lb, in_stride, neg_eps_in = dv.cb_in, dv.cb_lb, dv.in_stride, dv.neg_eps_in
        load_start = self.load_start

        def sig(name, *args, **kwargs):      # the way's own signals are named after it
            return Signal(*args, name=f"w{j}_{name}", **kwargs)

        req = stream.Signature(32).create(path=(f"w{j}_req",))
        beat = stream.Signature(8 * B).flip().create(path=(f"w{j}_beat",))
        fin = sig("fin")
        done = sig("done")
        init_en, init_addr, init_data = sig("init_en"), sig("init_addr", range(self.table_depth)), sig("init_data", 32)

        # the block-pointer table: read for the next segment's block (below), written back at a
        # segment's end from registers; the control stage's writes (before the run) directly
        in_ptr = Memory(shape=32, depth=self.table_depth, init=[])
        m.submodules[f"in_ptr{j}" if N > 1 else "in_ptr"] = in_ptr
        ip_w = in_ptr.write_port()
        ip_r = in_ptr.read_port()
        ipw_en = sig("ipw_en")
        ipw_addr = sig("ipw_addr", range(self.table_depth))
        ipw_data = sig("ipw_data", 32)
        m.d.comb += [ip_w.addr.eq(ipw_addr), ip_w.data.eq(ipw_data), ip_w.en.eq(ipw_en)]
        with m.If(init_en):
            m.d.comb += [ip_w.addr.eq(init_addr), ip_w.data.eq(init_data), ip_w.en.eq(1)]
        m.d.sync += ipw_en.eq(0)

        lcb = sig("lcb", 14)                 # the segment's channel block (j, j + ways, ...)
        tcb = sig("tcb", range(self.table_depth))   # lcb // ways: its table entry and its word in the pixel
        l_word = sig("l_word", 32)           # word within the row's slot in the bank: lx cb_lb + tcb
        l_cboff = sig("l_cboff", 40)         # lcb * in_stride
        lanes_valid = sig("lanes_valid", 8)  # channels 8*lcb + i < C, kept in step with lcb
        blk_left = sig("blk_left", signed(18))  # C - 8*lcb: channels from this block on
        lcb_last = sig("lcb_last")           # lcb + ways >= cb_in: the row's last block of this way
        l_rec = sig("l_rec", 16)             # records of the segment taken
        rec_last = sig("rec_last")           # the next record is the segment's last: l_rec + 1 == W
        seg_start = sig("seg_start", 32)     # the segment's first byte
        seg_ptr = sig("seg_ptr", 32)         # the next record's first byte

        def set_block(left):                 # lcb moves to the block with `left` channels from it on
            m.d.sync += [blk_left.eq(left)] + [lanes_valid[i].eq(left > i) for i in range(BLOCK)]

        # the fetcher: beat addresses f_addr .. f_addr + f_left - 1, at most `ahead` in flight.
        # A request once valid stays valid until taken (`hold`), even past the segment's end
        f_addr = sig("f_addr", 32)
        f_left = sig("f_left", 32)
        f_any = sig("f_any")                 # f_left != 0
        pending = sig("pending", range(ahead + 2))  # beats requested, not yet arrived
        drop = sig("drop", range(ahead + 2))        # of those, beats of a finished segment
        hold = sig("hold")
        fetching = sig("fetching")           # in L_SEG: a register of its own (it enables most of the window)
        # f_ok: the beat at f_addr may hold a byte of the segment, its start below `seg_lim`, the
        # segment's largest possible end given the records parsed so far (the next record's byte
        # plus 9 a record left, compressed; exact in the dense layout). Without it a compressed
        # segment read 9 W bytes' worth of beats as far as `ahead` allowed, and the beats in
        # flight, in Q, P and the window at its end were dropped: mobilenet.conv24's port carried
        # 97,680 bytes for 61,812 of records. The compares are registered, made for f_addr and
        # f_addr + 1 with a cycle-old seg_lim, and a beat taken in the cycle before chooses (f_addr
        # has moved on): a stale seg_lim only lets through a beat the exact check would hold back
        # a cycle longer (it only falls in a segment), never holds back a needed one
        accept = sig("accept")
        arrive = sig("arrive")
        seg_lim = sig("seg_lim", 33)
        f_ok = sig("f_ok")
        ok_cur, ok_nxt, acc_q = sig("ok_cur"), sig("ok_nxt"), sig("acc_q")
        m.d.sync += [ok_cur.eq(Cat(Const(0, sh), f_addr) < seg_lim),
                     ok_nxt.eq(Cat(Const(0, sh), f_addr + 1) < seg_lim), acc_q.eq(accept)]
        m.d.comb += f_ok.eq(Mux(acc_q, ok_nxt, ok_cur))
        m.d.comb += [req.payload.eq(f_addr), req.valid.eq((fetching & f_any & f_ok & (pending < ahead)) | hold)]
        m.d.comb += [accept.eq(req.valid & req.ready), arrive.eq(beat.valid & beat.ready)]
        m.d.sync += [hold.eq(req.valid & ~req.ready), pending.eq(pending + accept - arrive)]
        with m.If(accept):
            m.d.sync += [f_addr.eq(f_addr + 1), f_left.eq(f_left - 1), f_any.eq(f_left != 1)]
        drop_nz = sig("drop_nz")
        m.d.comb += drop_nz.eq(drop != 0)

        # a beat of the segment enters a register first (Q), with each byte's record length if it
        # is a bitmap (compressed: 1 + its set lanes below C; dense: 8) and its |x| > EPS_IN flag,
        # from the segment's first byte on in its first beat: the window's loop then sees no
        # popcount and no compare
        first = sig("first")                 # the next beat taken is the segment's first
        skip = sig("skip", range(B))         # the segment's first byte's place in its beat
        lo = sig("lo", range(B))
        m.d.comb += lo.eq(Mux(first, skip, 0))
        q_valid = sig("q_valid")
        q_count = sig("q_count", range(B + 1))
        q_bytes = sig("q_bytes", 8 * B)
        q_lens = sig("q_lens", 4 * B)
        q_gts = sig("q_gts", B)

        # the byte window: entries 0 .. n_q - 1 hold the segment's next bytes (the rest are 0)
        win = sig("win", 8 * CQ)
        wlen = sig("wlen", 4 * CQ)
        wgt = sig("wgt", CQ)
        n_q = sig("n_q", range(CQ + 1))
        # a beat is taken while the window will have room for it when it leaves Q: a register,
        # made a cycle ahead from the window's next fill level and the most Q can then hold (B).
        # `held` counts the bytes in the window, P and Q (n_q + P's + Q's), kept by itself so that
        # the flag is one subtraction and compare from registers, not the fill level's two sums
        # and then a third (the path that limited the ULX3S at 90.8 MHz)
        room = sig("room")
        held = sig("held", range(CQ + 2 * B + 1))
        m.d.comb += beat.ready.eq(drop_nz | (fetching & room))
        take = sig("take")                   # a beat of the segment enters Q
        m.d.comb += take.eq(arrive & ~drop_nz & fetching)
        # each byte's length and flag come from the beat as it arrives, beside the shift to the
        # segment's first byte (not after it: the shift amount is late, from `first`), and are
        # shifted with the bytes; the zeros shifted in above the beat's own bytes have no length
        # and no flag, so entries past the window's bytes stay 0
        beat_bytes = [beat.payload[8 * i:8 * i + 8] for i in range(B)]
        beat_lens = Cat(Mux(in_cmp, popcount(bb & lanes_valid, BLOCK) + 1, BLOCK)[:4] for bb in beat_bytes)
        beat_gts = Cat((bb.as_signed() > eps_in) | (bb.as_signed() < neg_eps_in) for bb in beat_bytes)
        with m.If(fetching):
            m.d.sync += [q_valid.eq(take), q_count.eq(B - lo),
                         q_bytes.eq(beat.payload >> Cat(Const(0, 3), lo)),
                         q_lens.eq(beat_lens >> Cat(Const(0, 2), lo)),
                         q_gts.eq(beat_gts >> lo)]
            with m.If(take):
                m.d.sync += first.eq(0)

        # the record at the window's head leaves once the window holds all of it. The decision
        # comes from two registers, so that it only selects between the window shifted and not
        # (both formed from registers): `full` (the window holds 9 bytes or more, so any record:
        # made from the next fill level for either decision) and `slow` (the exact check, made a
        # cycle before, in a cycle where nothing left: the bytes have only grown since). A record
        # then leaves every cycle while the window holds 9 bytes, every other cycle near a
        # segment's end
        len0 = wlen[:4]
        full = sig("full")
        slow = sig("slow")
        rec = sig("rec")                     # full and slow are 0 outside L_SEG
        m.d.comb += rec.eq(full | slow)
        # Q's bytes are placed after the window's one cycle ahead, in P (a register as wide as the
        # window: Q shifted to the fill level the window will have), so that the window's loop is
        # an OR and one shift by the head record's length, never a shift by the fill level and then
        # one by the record
        p_win = sig("p_win", 8 * CQ)
        p_len = sig("p_len", 4 * CQ)
        p_gt = sig("p_gt", CQ)
        grown = sig("grown", range(CQ + 1))  # the fill level with P's bytes, n_q + P's: a register
        after = sig("after", range(CQ + 1))  # the same once the head record has left
        level = sig("level", range(CQ + 1))  # the fill level in the next cycle
        m.d.comb += [after.eq(grown - len0), level.eq(Mux(rec, after, grown))]
        q_in = sig("q_in", range(B + 1))     # the bytes Q passes to P
        m.d.comb += q_in.eq(Mux(q_valid, q_count, 0))
        # everything made from the next fill level is made for both decisions, from registers,
        # and `rec` only chooses (it comes late: the loop's slowest path)
        def placed(v, unit_bits):            # v's entries (2 ** unit_bits bits each) after the window's
            return Mux(rec, v << Cat(Const(0, unit_bits), after), v << Cat(Const(0, unit_bits), grown))
        ext_win = win | p_win
        ext_len = wlen | p_len
        ext_gt = wgt | p_gt
        win_next = sig("win_next", 8 * CQ)
        wlen_next = sig("wlen_next", 4 * CQ)
        wgt_next = sig("wgt_next", CQ)
        m.d.comb += [
            win_next.eq(Mux(rec, ext_win >> Cat(Const(0, 3), len0), ext_win)),
            wlen_next.eq(Mux(rec, ext_len >> Cat(Const(0, 2), len0), ext_len)),
            wgt_next.eq(Mux(rec, ext_gt >> len0, ext_gt)),
        ]
        with m.If(fetching):
            m.d.sync += [p_win.eq(placed(Mux(q_valid, q_bytes, 0), 3)),
                         p_len.eq(placed(Mux(q_valid, q_lens, 0), 2)),
                         p_gt.eq(placed(Mux(q_valid, q_gts, 0), 0))]
            m.d.sync += [win.eq(win_next), wlen.eq(wlen_next), wgt.eq(wgt_next), n_q.eq(level),
                         held.eq(Mux(rec, held - len0, held) + Mux(take, B - lo, 0)),
                         room.eq(Mux(rec, held <= CQ - 2 * B + len0, held <= CQ - 2 * B)),
                         grown.eq(Mux(rec, after + q_in, grown + q_in)),
                         full.eq(Mux(rec, grown >= len0 + BLOCK + 1, grown >= BLOCK + 1)),
                         slow.eq(~rec & (n_q >= len0) & (n_q != 0))]
        end = sig("end")                     # the segment's last record leaves
        m.d.comb += end.eq(rec & rec_last)
        cnt = sig("cnt", range(BLOCK + 1))
        m.d.comb += cnt.eq(len0 - 1)
        bitmap = rec & in_cmp
        values = Mux(rec, Mux(in_cmp, cnt, BLOCK), 0)

        # X: the record taken, registered; its values are placed in their lanes in the next cycle,
        # and the word is written to the line buffer in the cycle after
        x_valid = sig("x_valid")
        x_bytes = sig("x_bytes", 8 * (BLOCK + 1))
        x_gts = sig("x_gts", BLOCK + 1)
        x_addr = sig("x_addr", range(self.bank_depth))
        x_bm = sig("x_bm", 8)
        x_sel = [sig(f"x_sel{i}", range(BLOCK + 1)) for i in range(BLOCK)]
        head_bm = win[:8] & lanes_valid
        m.d.sync += [x_valid.eq(rec), x_bytes.eq(win[:8 * (BLOCK + 1)]), x_gts.eq(wgt[:BLOCK + 1]),
                     x_addr.eq(l_slot_base + l_word), x_bm.eq(head_bm)]
        # lane i's value is the byte after the bitmap and the values stored below lane i
        m.d.sync += [x_sel[i].eq(popcount(head_bm, i) + 1) for i in range(BLOCK)]
        byte = [x_bytes[8 * i:8 * i + 8] for i in range(BLOCK + 1)]
        bm = x_bm
        vals = Signal(data.ArrayLayout(signed(8), BLOCK), name=f"w{j}_vals")
        big = sig("big", 8)
        for i in range(BLOCK):
            sel = x_sel[i]
            packed = sig(f"packed{i}", 8)
            packed_gt = sig(f"packed_gt{i}")
            with m.Switch(sel):
                for jj in range(1, BLOCK + 1):
                    with m.Case(jj):
                        m.d.comb += [packed.eq(byte[jj]), packed_gt.eq(x_gts[jj])]
            m.d.comb += [vals[i].eq(Mux(in_cmp, Mux(bm[i], packed, 0), byte[i])),
                         big[i].eq(Mux(in_cmp, bm[i] & packed_gt, x_gts[i]))]
        lbw_en, lbw_addr, lbw_data = sig("lb_en"), sig("lb_addr", range(self.bank_depth)), Signal(Word(), name=f"w{j}_lb_data")
        m.d.sync += [lbw_en.eq(x_valid), lbw_addr.eq(x_addr), lbw_data.values.eq(vals),
                     lbw_data.mask.eq(lanes_valid & Mux(dense, 0xFF, big))]

        with m.If(rec):
            m.d.sync += [l_rec.eq(l_rec + 1), rec_last.eq(l_rec + 2 == W), l_word.eq(l_word + cb_lb),
                         seg_ptr.eq(seg_ptr + len0),
                         # the record took len0 of its largest size's bytes (9, or 8 dense)
                         seg_lim.eq(seg_lim - Mux(in_cmp, BLOCK + 1, BLOCK) + len0)]
        with m.If(end):
            # the beats still to arrive are dropped; the pointer is written back
            m.d.sync += [win.eq(0), wlen.eq(0), wgt.eq(0), n_q.eq(0), q_valid.eq(0),
                         p_win.eq(0), p_len.eq(0), p_gt.eq(0), full.eq(0), slow.eq(0),
                         room.eq(1), held.eq(0), grown.eq(0),
                         drop.eq(pending + accept - arrive),
                         ipw_en.eq(in_cmp), ipw_addr.eq(tcb), ipw_data.eq(seg_ptr + len0)]
        with m.Else():
            m.d.sync += drop.eq(drop + (accept & ~fetching) - (arrive & drop_nz))

        # the table is read a cycle ahead, so that its entry is registered (ptr_q) before it is
        # used: from the block RAM's output straight into the segment's pointers it was the
        # ULX3S's critical path (10.2 ns, 5.8 of them the RAM's clock-to-output). L_PTR (a row's
        # first segment, from L_WAIT) reads tcb's entry; through L_SEG and L_NEXT the next
        # block's (tcb + 1) is read for the pipeline below (the entry written back at a
        # segment's end is tcb's)
        ahead_rd = sig("ahead_rd")           # in L_SEG or L_NEXT: the next block's entry is read
        m.d.comb += ip_r.addr.eq(Mux(ahead_rd, tcb + 1, tcb))
        ptr_q = sig("ptr_q", 32)
        start_sum = sig("start_sum", 32)
        m.d.comb += start_sum.eq(Mux(in_cmp, ptr_q, d.IN_BASE + l_cboff + l_row8))
        seg_end = sig("seg_end", 33)
        m.d.comb += seg_end.eq(seg_start + seg_max + (B - 1))

        # the next segment of the row (block lcb + ways), made while this one streams, so that
        # L_NEXT starts it at once (the row's first segment goes through L_PTR, L_START and
        # L_GO): its table entry (read from tcb + 1 through L_SEG; the entry written back at a
        # segment's end is tcb's), its start, its beats. A pipeline of registers recomputed every
        # cycle from the segment's own (constant through it), through six cycles after the
        # segment starts; `n_ready` counts them. The memories here answer a request a cycle later
        # at the earliest, and a segment then lasts at least that long (the request, the beat, Q,
        # P, the window), so no test reaches the wait; a port that answers in the request's cycle
        # could end a one-record segment a cycle sooner
        n_ptr = sig("n_ptr", 32)
        n_cboff = sig("n_cboff", 40)
        n_dense = sig("n_dense", 32)
        n_start = sig("n_start", 32)
        n_end = sig("n_end", 33)
        n_faddr = sig("n_faddr", 32)
        n_fleft = sig("n_fleft", 32)
        n_wait = sig("n_wait", range(6))
        n_ready = sig("n_ready")
        m.d.sync += [n_ptr.eq(ip_r.data), n_cboff.eq(l_cboff + (in_stride << (N - 1))),
                     n_dense.eq(d.IN_BASE + n_cboff + l_row8),
                     n_start.eq(Mux(in_cmp, n_ptr, n_dense)),
                     n_end.eq(n_start + seg_max + (B - 1)),
                     n_faddr.eq(n_start >> sh), n_fleft.eq((n_end >> sh) - (n_start >> sh))]
        with m.If(ahead_rd):
            m.d.sync += [n_wait.eq(Mux(n_ready, n_wait, n_wait + 1)), n_ready.eq(n_ready | (n_wait == 5))]
        with m.Else():
            m.d.sync += [n_wait.eq(0), n_ready.eq(0)]

        # the row's first block of this way, for `go`: block j
        def first_block():
            set_block(C - BLOCK * j)
            m.d.sync += [lcb.eq(j), tcb.eq(0), lcb_last.eq(cb_in <= j + N), l_cboff.eq(in_stride * j)]

        with m.FSM(name=f"w{j}_fsm"):
            with m.State("L_WAIT"):          # the row's start
                with m.If(load_start):
                    first_block()
                    m.d.sync += done.eq(1)
                with m.Elif(go):
                    # a way with no block in the row (cb_in <= j) is done at once
                    with m.If(cb_in > j):
                        m.d.sync += done.eq(0)
                        m.next = "L_PTR"
            with m.State("L_PTR"):           # tcb's table entry, read in the cycle before
                m.d.sync += ptr_q.eq(ip_r.data)
                m.next = "L_START"
            with m.State("L_START"):
                m.d.sync += [seg_start.eq(start_sum), seg_ptr.eq(start_sum), l_word.eq(tcb),
                             l_rec.eq(0), rec_last.eq(W == 1)]
                m.next = "L_GO"
            with m.State("L_GO"):
                # seg_lim from the registered start (from start_sum's three-operand add it was the
                # ULX3S's critical path, 10.7 ns)
                m.d.sync += [seg_lim.eq(seg_start + seg_max),
                             f_addr.eq(seg_start >> sh), f_left.eq((seg_end >> sh) - (seg_start >> sh)),
                             f_any.eq(1), ok_cur.eq(1), acc_q.eq(0), skip.eq(seg_start[:sh] if sh else 0), first.eq(1),
                             fetching.eq(1)]
                m.next = "L_SEG"
            with m.State("L_SEG"):
                m.d.comb += ahead_rd.eq(1)
                with m.If(end):
                    m.d.sync += fetching.eq(0)
                    m.next = "L_NEXT"
            with m.State("L_NEXT"):          # the next segment, once no request is held
                m.d.comb += ahead_rd.eq(1)
                with m.If(~hold & (n_ready | lcb_last)):
                    with m.If(~lcb_last):
                        # the next segment starts from the pipeline's registers (L_START and
                        # L_GO at once)
                        m.d.sync += [lcb.eq(lcb + N), tcb.eq(tcb + 1), lcb_last.eq(lcb + 2 * N >= cb_in),
                                     l_cboff.eq(n_cboff),
                                     seg_start.eq(n_start), seg_ptr.eq(n_start), seg_lim.eq(n_start + seg_max),
                                     l_word.eq(tcb + 1), l_rec.eq(0), rec_last.eq(W == 1),
                                     f_addr.eq(n_faddr), f_left.eq(n_fleft), f_any.eq(1), ok_cur.eq(1), acc_q.eq(0),
                                     skip.eq(n_start[:sh] if sh else 0), first.eq(1), fetching.eq(1),
                                     n_wait.eq(0), n_ready.eq(0)]
                        set_block(blk_left - BLOCK * N)
                        m.next = "L_SEG"
                    with m.Else():
                        # the row's last segment of this way: its last word is written in this
                        # cycle, and the next row starts from its first block
                        m.d.comb += fin.eq(1)
                        m.d.sync += done.eq(1)
                        first_block()
                        m.next = "L_WAIT"
        return dict(req=req, beat=beat, fin=fin, done=done, init_en=init_en, init_addr=init_addr, init_data=init_data,
                    busy=(pending != 0) | hold, bitmap=bitmap, values=values,
                    lb_en=lbw_en, lb_addr=lbw_addr, lb_data=lbw_data)
