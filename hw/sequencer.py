"""The sequencer: the loop nest of a layer. For every output row, block group of output
channels, output column and subgroup of P (depthwise D) channels, it walks the window (input
channel block, ky, kx; depthwise one block) and presents each position's line-buffer word, with
what the scanner needs, on a stream."""
from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, DEFAULT_FM_WAYS, DW_K_MAX, check_ways, dw_lanes
from .arith import near
from .ports import Descriptor
from .queues import credits
from .scanner import Position, Word
from .setup import Derived


class Group(data.StructLayout):
    """One output pixel-group, from the sequencer to the output stage (which takes one with each
    group's accumulators, in the same order): what the stages after the MAC lanes need to know of
    it, so that none of them keeps a copy of the loop counters."""
    def __init__(self):
        super().__init__({
            "k0": 16,                       # its first output channel
            "pix": 32,                      # its output pixel, oy * Wo + ox
            "lastpix": 1,                   # the layer's last pixel and block group (the last groups)
        })


class Issue(data.StructLayout):
    """A position as the sequencer issues it, before the line buffer is read."""
    def __init__(self, lanes, linebuf_depth):
        fields = {
            "inb": 1, "last": 1, "chmask": 8, "wbase": 32, "dwoff": 3,   # as in Position
            "kleft": signed(18),            # K - k0: the group's output channels from its first
            "raddr": range(linebuf_depth),  # the line-buffer word (in its bank)
            "rbank": 1,                     # the line-buffer bank (the block's way, with two ways)
            "group": Group(),               # the group's record (pushed with its last position)
        }
        if lanes >= BLOCK:                  # the depthwise column walk's (as in Position)
            fields.update({"wstart": 1, "wnext": 32, "wnext_valid": 1, "inb_dw": DW_K_MAX - 1,
                           "raddr_dw": data.ArrayLayout(range(linebuf_depth), DW_K_MAX - 1)})
        super().__init__(fields)


def dw_read_ports(lanes, linebuf_depth):
    """The line buffer's extra read ports for the depthwise column walk (rows 1 .. DW_K_MAX - 1 of
    a column; none below P = 8)."""
    if lanes < BLOCK:
        return {}
    return {"lb_r_addr_dw": Out(data.ArrayLayout(range(linebuf_depth), DW_K_MAX - 1)),
            "lb_r_data_dw": In(data.ArrayLayout(Word(), DW_K_MAX - 1))}


class PositionPipe(wiring.Component):
    """The sequencer's back half: stage B registers the issued position's facts and its
    line-buffer address, which the line buffer reads; stage C registers the facts again (and
    clamps K - k0 into the group's real output channels); stage D has the word from the line
    buffer's output register and pushes it with the facts into a queue of seven for the scanner.
    ``i.ready`` is a credit flag counting the queue's free places less the three in flight, so the
    sequencer never waits on the scanner within a cycle. (A row the sequencer has finished is
    released for the loader at the row's end; the loader's first write into it comes many cycles
    after the last reads leave stage B.) Each group's record enters the group queue with its last
    position.

    Attributes
    ----------
    i : In(stream.Signature(Issue(lanes, linebuf_depth)))
        The issued positions; ``i.ready`` is a register.
    clear : In(1)
        The run's first cycle: empty stages B to D.
    lb_r_addr, lb_r_bank, lb_r_data : Out(range(linebuf_depth)), Out(1), In(Word())
        The line buffer's read port (the address within a bank, the bank: hw/linebuf.py).
    o, groups : Out(stream.Signature(Position(lanes))), Out(stream.Signature(Group()))
        As the Sequencer's.
    """

    def __init__(self, lanes, *, linebuf_depth, group_depth):
        self.P, self.linebuf_depth, self.group_depth = lanes, linebuf_depth, group_depth
        super().__init__({"i": In(stream.Signature(Issue(lanes, linebuf_depth))), "clear": In(1),
                          "lb_r_addr": Out(range(linebuf_depth)), "lb_r_bank": Out(1), "lb_r_data": In(Word()),
                          "o": Out(stream.Signature(Position(lanes))), "groups": Out(stream.Signature(Group())),
                          **dw_read_ports(lanes, linebuf_depth)})

    def elaborate(self, platform):
        m = Module()
        P = self.P
        # stage B registers the issued position's facts and its line-buffer address; the line
        # buffer reads there. Stage C registers the facts again; stage D has the word from the line
        # buffer's output register and pushes it with the facts into a short queue for the
        # scanner. The sequencer issues while the queue has room counting the three in flight, so
        # it never waits on the scanner within a cycle. (A row the sequencer has finished is
        # released for the loader at the row's end; the loader's first write into it comes many
        # cycles after the last reads leave stage B.)
        b_valid = Signal()
        b_inb = Signal()
        b_last = Signal()
        b_wbase = Signal(32)
        b_chmask = Signal(8)
        b_dwoff = Signal(3)
        b_wstart = Signal()
        b_wnext = Signal(32)
        b_wnext_valid = Signal()
        b_inb_dw = Signal(DW_K_MAX - 1)
        dw = P >= BLOCK
        b_raddr_dw = Signal.like(self.lb_r_addr_dw) if dw else None
        b_kleft = Signal(signed(18))         # K - k0: the group's output channels from its first
        b_raddr = Signal.like(self.lb_r_addr)  # cur_base + ix_cb + pos_cb // ways
        b_rbank = self.lb_r_bank             # pos_cb % ways: every read port's (they read one block)
        # nl: the group's real output channels, min(max(K - k0, 0), P) (standard layers' MACs an item)
        pos_layout = Position(P)
        BQ = 7
        m.submodules.bq = bq = SyncFIFOBuffered(width=pos_layout.size, depth=BQ)
        b_take = Signal()
        m.d.comb += [self.o.valid.eq(bq.r_rdy), self.o.payload.eq(bq.r_data),
                     b_take.eq(self.o.valid & self.o.ready), bq.r_en.eq(b_take)]
        b_entry = Signal(pos_layout)
        # free queue entries, counting the positions in flight (B, C, D), as a register: the
        # sequencer's enable then comes from a flip-flop, not from the queue's level and the scanner's pop
        a_adv, a_valid = self.i.ready, self.i.valid
        m.d.comb += [a_adv.eq(credits(m, BQ, "seq", a_adv & a_valid, b_take)), self.lb_r_addr.eq(b_raddr),
                     b_entry.inb.eq(b_inb), b_entry.last.eq(b_last),
                     b_entry.wbase.eq(b_wbase), b_entry.chmask.eq(b_chmask), b_entry.dwoff.eq(b_dwoff)]
        if dw:
            m.d.comb += [b_entry.wstart.eq(b_wstart), b_entry.wnext.eq(b_wnext), b_entry.wnext_valid.eq(b_wnext_valid),
                         b_entry.inb_dw.eq(b_inb_dw), self.lb_r_addr_dw.eq(b_raddr_dw)]
        c_valid = Signal()
        c_entry = Signal(pos_layout)
        d_valid = Signal()
        d_entry = Signal(pos_layout)
        # K - k0 subtracted in stage B, clamped into stage C
        m.d.sync += [b_valid.eq(a_adv & a_valid), c_valid.eq(b_valid), c_entry.eq(b_entry),
                     c_entry.nl.eq(Mux(b_kleft <= 0, 0, Mux(b_kleft < P, b_kleft, P))),
                     d_valid.eq(c_valid), d_entry.eq(c_entry)]
        d_full = Signal(pos_layout)
        m.d.comb += [d_full.eq(d_entry), d_full.word.eq(self.lb_r_data),
                     bq.w_data.eq(d_full), bq.w_en.eq(d_valid)]
        if dw:
            m.d.comb += d_full.words_dw.eq(self.lb_r_data_dw)
        # the group records: pushed with each group's last position
        m.submodules.gq = gq = SyncFIFOBuffered(width=Group().size, depth=self.group_depth)
        issue = self.i.payload
        m.d.comb += [gq.w_data.eq(issue.group), gq.w_en.eq(a_adv & a_valid & issue.last),
                     self.groups.valid.eq(gq.r_rdy), self.groups.payload.eq(gq.r_data),
                     gq.r_en.eq(self.groups.valid & self.groups.ready)]
        with m.If(a_adv):
            m.d.sync += [b_inb.eq(issue.inb), b_last.eq(issue.last), b_chmask.eq(issue.chmask),
                         b_wbase.eq(issue.wbase), b_dwoff.eq(issue.dwoff), b_kleft.eq(issue.kleft),
                         b_raddr.eq(issue.raddr), b_rbank.eq(issue.rbank)]
            if dw:
                m.d.sync += [b_wstart.eq(issue.wstart), b_wnext.eq(issue.wnext), b_wnext_valid.eq(issue.wnext_valid),
                             b_inb_dw.eq(issue.inb_dw), b_raddr_dw.eq(issue.raddr_dw)]
        with m.If(self.clear):
            m.d.sync += [b_valid.eq(0), c_valid.eq(0), d_valid.eq(0)]
        return m



class Sequencer(wiring.Component):
    """Positions of every output pixel-group, in the loop order oy > block group > ox > subgroup
    > (channel block, ky, kx).

    Every loop counter keeps its "last" flag as a register, and the nest's levels too (z[1]: kx at
    its last, z[2]: kx and ky, ... z[6]: the output row's last position), made from the flags'
    next values: the counter of level n steps when z[n-1] and not z[n], so each enable is the
    issue flag and two flip-flops. A subgroup wholly past OUT_K (only in the last block group) is
    one position with no operand, not a walk over its taps. An output row starts when the loader
    has the input rows it needs (``rows_loaded``); at its end the rows no later output row needs
    are released (``rows_released``). The line-buffer address is registered (stage B), the
    buffer's read data comes two cycles later (hw/ram.RegisteredRAM; stages C and D), and stage D
    pushes the position into a queue of seven that the sequencer enters on credits counting the
    three in flight. With each group's last position a ``Group`` record enters a second queue for
    the output stage. That queue needs no credits: a group is in flight from its last position's
    issue until the output stage takes its accumulators, and each group in flight holds a place in
    the position queue (seven, stages B to D included), the scanner (one), the item queue
    (``fifo_depth``), the MAC lanes' two stages or their hand-off (three), so ``group_depth`` =
    ``fifo_depth`` + 11 places are never all taken.

    Parameters
    ----------
    lanes : int
        P.
    linebuf_depth : int
        The words of a line-buffer bank (hw/linebuf.py).
    group_depth : int
        The group queue's places (at least the groups that can be in flight: above).
    walk : bool
        The engine has the depthwise column walk's stages (Engine's dw_walk; only with P >= 8).
    ways : int
        The line buffer's banks (the loader's ways): block cb of a pixel is word cb // ways of
        it in bank cb % ways.

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer.
    run, run_start : In(1), In(1)
        A run is on; its first cycle.
    rows_loaded : In(16)
        Input rows in the line buffer (the loader's).
    rows_released : Out(16)
        Input rows no output row still to come needs.
    lb_r_addr, lb_r_bank : Out(range(linebuf_depth)), Out(1)
        The line buffer's read address within a bank, and the bank (registers; the column walk's
        ports read the same bank).
    lb_r_data : In(Word())
        The line buffer's read data, two cycles after the address.
    lb_r_addr_dw, lb_r_data_dw : Out(ArrayLayout(range(linebuf_depth), 2)), In(ArrayLayout(Word(), 2))
        P >= 8: the read ports of the line buffer's two copies for the column walk's rows 1 and 2.
    o : Out(stream.Signature(Position(lanes)))
        The positions.
    groups : Out(stream.Signature(Group()))
        The groups, in order.
    colwalk : Out(1)
        The layer takes the depthwise column walk (DEPTHWISE, KERNEL <= 3, P >= 8; a register):
        for each output row and channel block a control position (``wstart``), then every input
        column the row's windows span, one position each with the column's k words (rows 1 and 2
        from the copies' read ports; ``last`` where a window ends), for the window assembler
        (hw/dwwindow.py) instead of the scanner.
    """

    def __init__(self, lanes, *, linebuf_depth, group_depth, walk=True, ways=DEFAULT_FM_WAYS):
        check_ways(ways)
        self.P, self.D, self.Q = lanes, dw_lanes(lanes), max(lanes, BLOCK)
        self.ways = ways
        self.walk = walk and lanes >= BLOCK      # the engine has the column walk's stages
        self.linebuf_depth, self.group_depth = linebuf_depth, group_depth
        super().__init__({"desc": In(Descriptor()), "derived": In(Derived(lanes)), "run": In(1), "run_start": In(1),
                          "rows_loaded": In(16), "rows_released": Out(16),
                          "lb_r_addr": Out(range(linebuf_depth)), "lb_r_bank": Out(1), "lb_r_data": In(Word()),
                          "o": Out(stream.Signature(Position(lanes))), "groups": Out(stream.Signature(Group())),
                          "colwalk": Out(1), **dw_read_ports(lanes, linebuf_depth)})

    def elaborate(self, platform):
        m = Module()
        P, D, Q = self.P, self.D, self.Q
        d, dv = self.desc, self.derived
        k, s, pad, dw = d.KERNEL, d.STRIDE, d.PAD, d.DEPTHWISE
        C, H, W, K, Ho, Wo = d.IN_C, d.IN_H, d.IN_W, d.OUT_K, d.OUT_H, d.OUT_W
        cb_in, cb_lb, khkw, c_khkw, row_words = dv.cb_in, dv.cb_lb, dv.khkw, dv.c_khkw, dv.row_words
        n_bg, n_sg, bg_stride, rows, rows_acc = dv.n_bg, dv.n_sg, dv.bg_stride, dv.rows, dv.rows_acc
        pad_words, s_words, pad_cb, s_cb = dv.pad_words, dv.s_words, dv.pad_cb, dv.s_cb
        run, run_start = self.run, self.run_start
        rows_loaded, rows_released = self.rows_loaded, self.rows_released

        oy = Signal(16)
        bg = Signal(16)
        ox = Signal(16)
        sg = Signal(4)
        cb = Signal(14)
        ky = Signal(4)
        kx = Signal(4)
        top = Signal(signed(18))             # oy * s - pad
        left = Signal(signed(18))            # ox * s - pad
        top_slot = Signal(5)
        cur_slot = Signal(5)
        g_off = Signal(32)                   # weight words of the groups before this one
        bg_off = Signal(32)
        g_stride = Signal(32)
        cb_woff = Signal(32)                 # 8 * cb * k * k
        kpos = Signal(8)                     # ky * k + kx
        # the loop counters' "last" conditions, kept in step with them as registers (off the
        # sequencer's path): kx + 1 >= k, ky + 1 >= k, cb + 1 >= cb_in, sg + 1 >= n_sg, ox + 1 >= Wo, bg + 1 >= n_bg
        kx_last = Signal()
        ky_last = Signal()
        cb_last = Signal()
        sg_last = Signal()
        ox_last = Signal()
        bg_last = Signal()
        # the line-buffer address cur_slot * row_words + ix * cb_lb + cb // ways (in bank cb % ways),
        # kept as running sums (modulo the buffer's address width: only in-bounds positions are read)
        LBW = len(self.lb_r_addr)
        cur_base = Signal(LBW)               # cur_slot * row_words
        top_base = Signal(LBW)               # top_slot * row_words
        left_cb = Signal(LBW)                # left * cb_lb
        ix_cb = Signal(LBW)                  # (left + kx) * cb_lb
        need_rows = Signal(signed(18))       # min(top + k, H): input rows the output row needs, kept in step with top

        a_adv = Signal()
        a_valid = Signal()
        iy = Signal(signed(18))
        ix = Signal(signed(18))
        m.d.comb += [iy.eq(top + ky), ix.eq(left + kx)]
        inb = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        pos_cb = Mux(dw, bg, cb)             # the position's channel block
        pos_word = pos_cb >> (self.ways - 1)     # its word in the pixel, in bank pos_cb % ways
        group_empty = Signal()               # every channel of this group is past K: k0 >= K, kept in step with k0
        # the loop nest's levels as registers: z[1] kx at its last (or the group empty), z[2] also
        # ky, z[3] also cb (standard layers): the group's last position; z[4] also sg, z[5] also
        # ox, z[6] also bg: the output row's last. The counter of level n steps when z[n-1] and
        # not z[n], and restarts when z[n] (z[0] = 1), so every enable is a_adv and two flip-flops.
        # The flags' next values (nxt, set by S_IDLE and S_POS) make the next z.
        # Only the last block group can have empty subgroups (n_bg = ceil(K / step)); there, the
        # subgroups from n_real = ceil(rem / lanes) on are empty, rem = K - (n_bg - 1) * step. With
        # power-of-two steps, n_real - 1 = ((K - 1) mod 8) >> log2(D) (P >= 8: one subgroup, 0).
        # sr: sg >= n_real - 1, kept in step with sg: the next subgroup step (in the last block
        # group) reaches an empty one. So group_empty's next value is a register's, not k0 + step >= K.
        sg_real_last = Signal()
        n_real_m1 = Signal(3)
        m.d.sync += n_real_m1.eq((K - 1)[:3] >> (D.bit_length() - 1))
        flags = dict(kx=kx_last, ky=ky_last, cb=cb_last, sg=sg_last, ox=ox_last, bg=bg_last, ge=group_empty,
                     sr=sg_real_last)
        nxt = {n: Signal(name=f"seq_{n}_next") for n in flags}
        m.d.comb += [nxt[n].eq(f) for n, f in flags.items()]
        m.d.sync += [f.eq(nxt[n]) for n, f in flags.items()]
        z = [Const(1)] + [Signal(name=f"seq_z{i}") for i in range(1, 7)]
        zn = [Const(1)] + [Signal(name=f"seq_z{i}_next") for i in range(1, 7)]
        m.d.comb += [zn[1].eq(nxt["kx"] | nxt["ge"]), zn[2].eq(zn[1] & (nxt["ky"] | nxt["ge"])),
                     zn[3].eq(zn[2] & (dw | nxt["cb"] | nxt["ge"])), zn[4].eq(zn[3] & nxt["sg"]),
                     zn[5].eq(zn[4] & nxt["ox"]), zn[6].eq(zn[5] & nxt["bg"])]
        m.d.sync += [z[i].eq(zn[i]) for i in range(1, 7)]
        # each loop's restart value of its "last" flag (one trip), registered from the descriptor
        k_one, cb_one, sg_one, ox_one, bg_one = (Signal(name=f"seq_{n}_one") for n in ("k", "cb", "sg", "ox", "bg"))
        m.d.sync += [k_one.eq(k <= 1), cb_one.eq(cb_in <= 1), sg_one.eq(n_sg <= 1), ox_one.eq(Wo <= 1),
                     bg_one.eq(n_bg <= 1)]
        k0 = Signal(16)                      # first output channel of the group: bg Q + sg P (dw: 8 bg + D sg)
        bg_k0 = Signal(16)                   # first output channel of the block group
        # the next output row's slot, line-buffer base and released rows, computed ahead in two
        # steps from top_slot / top_base / top: an output row ends in S_POS, and S_SETTLE and S_ROW
        # always follow, so these are settled before the next row's end uses them
        nts = Signal(6)                      # top_slot + s
        nts_wrap = Signal()                  # top_slot + s >= rows
        tb_s = Signal(LBW)                   # top_base + s_words
        m.d.sync += [nts.eq(top_slot + s), nts_wrap.eq(top_slot + s >= rows), tb_s.eq(top_base + s_words)]
        next_slot = Signal(5)
        next_base = Signal(LBW)
        next_released = Signal(16)
        next_need = Signal(signed(18))
        rel = Signal(signed(18))             # top + s, kept in step with top
        nt_k = Signal(signed(19))            # top + s + k
        m.d.sync += next_need.eq(Mux(nt_k > H, H, nt_k))
        m.d.sync += [next_slot.eq(Mux(nts_wrap, nts - rows, nts)),
                     next_base.eq(tb_s - Mux(nts_wrap, rows_acc, 0)),
                     next_released.eq(Mux(rel < 0, 0, Mux(rel > H, H, rel)))]
        chmask = Signal(8)
        for i in range(BLOCK):
            m.d.comb += chmask[i].eq(pos_cb * BLOCK + i < C)

        # the issued position's facts, to the position pipe (stages B, C, D and the queues)
        m.submodules.pipe = pipe = PositionPipe(P, linebuf_depth=self.linebuf_depth, group_depth=self.group_depth)
        wiring.connect(m, pipe.o, wiring.flipped(self.o))
        wiring.connect(m, pipe.groups, wiring.flipped(self.groups))
        m.d.comb += [self.lb_r_addr.eq(pipe.lb_r_addr), self.lb_r_bank.eq(pipe.lb_r_bank),
                     pipe.lb_r_data.eq(self.lb_r_data), pipe.clear.eq(run_start)]
        if P >= BLOCK:
            m.d.comb += [self.lb_r_addr_dw.eq(pipe.lb_r_addr_dw), pipe.lb_r_data_dw.eq(self.lb_r_data_dw)]
        row_pix = Signal(32)                 # oy * Wo
        g_pix = Signal(32)                   # oy * Wo + ox
        oy_last = Signal()                   # oy + 1 == Ho
        issue = pipe.i.payload
        m.d.comb += [pipe.i.valid.eq(a_valid), a_adv.eq(pipe.i.ready),
                     issue.inb.eq(inb & ~group_empty), issue.last.eq(z[3]),
                     issue.chmask.eq(Mux(group_empty, 0, chmask)),
                     issue.wbase.eq(dv.w_origin + g_off + cb_woff + kpos), issue.dwoff.eq((sg * D)[:3]),
                     issue.kleft.eq(K - k0), issue.raddr.eq(cur_base + ix_cb + pos_word),
                     issue.rbank.eq(pos_cb[0] if self.ways > 1 else 0),
                     issue.group.k0.eq(k0), issue.group.pix.eq(g_pix),
                     issue.group.lastpix.eq(oy_last & bg_last & ox_last)]

        # the start values, registered from the descriptor and its derived values (settled long
        # before RUN: INIT and PARAMS come between), in two steps where there is arithmetic
        st_kp = Signal(signed(6))            # k - pad
        st_need = Signal(signed(18))         # min(k - pad, H)
        st_slot = Signal(5)
        st_base = Signal(LBW)
        st_left_cb = Signal(LBW)
        m.d.sync += [st_kp.eq(k - pad), st_need.eq(Mux(st_kp > H, H, st_kp)),
                     st_slot.eq(Mux(pad == 0, 0, rows - pad)),
                     st_base.eq(Mux(pad == 0, 0, rows_acc - pad_words)), st_left_cb.eq(-pad_cb)]

        # S_ROW's decisions as registers: oy and need_rows hold from S_SETTLE on; rows_loaded only
        # grows, so a cycle late it is at most too small, which only delays the row
        s_rows_done = Signal()               # oy == Ho
        s_row_ready = Signal()               # rows_loaded >= need_rows
        m.d.sync += [s_rows_done.eq(oy == Ho), s_row_ready.eq(rows_loaded >= need_rows)]
        # the wide counters' next "last" flags as registers too (cb + 2 >= cb_in, and so on)
        cb_near, cb_near_step, cb_near_restart = near(m, "seq_cb", cb, cb_in)
        ox_near, ox_near_step, ox_near_restart = near(m, "seq_ox", ox, Wo)
        bg_near, bg_near_step, bg_near_restart = near(m, "seq_bg", bg, n_bg)

        # the depthwise column walk (k <= 3, P >= 8: hw/dwwindow.py): for each output row and
        # channel block a control position (the block's weights), then every input column the
        # row's windows span, one position with its k words (row 0 from the line buffer's port,
        # rows 1 and 2 from its copies'); a window ends at columns k - 1, k - 1 + s, ... (d_end:
        # the current column is one, kept as a register)
        colwalk = self.colwalk
        m.d.sync += colwalk.eq(dw & (k <= DW_K_MAX) if self.walk else 0)
        d_to_end = Signal(4)                 # columns until the next window's last
        d_end = Signal()                     # d_to_end == 0
        if P >= BLOCK:
            # rows 1 and 2 of the window: their slots' bases (modulo the R slots) and whether
            # they are inside the input and the kernel (none outside the column walk), as
            # registers made from top_slot / top_base / top, which hold from an output row's
            # start (S_SETTLE and S_ROW come first, so the two steps of base_dw[2] have settled
            # by S_DWCTL)
            slot_dw = [top_slot] + [Signal(6, name=f"seq_slot_dw{r}") for r in range(1, DW_K_MAX)]
            base_dw = [top_base] + [Signal(LBW, name=f"seq_base_dw{r}") for r in range(1, DW_K_MAX)]
            row_in = [Signal(name=f"seq_row_in{r}") for r in range(1, DW_K_MAX)]
            for r in range(1, DW_K_MAX):
                wrap = slot_dw[r - 1] + 1 >= rows
                m.d.sync += [slot_dw[r].eq(Mux(wrap, slot_dw[r - 1] + 1 - rows, slot_dw[r - 1] + 1)),
                             base_dw[r].eq(base_dw[r - 1] + row_words - Mux(wrap, rows_acc, 0)),
                             row_in[r - 1].eq((top + r >= 0) & (top + r < H) & (k > r) & colwalk)]
            col_in = (ix >= 0) & (ix < W)
            m.d.comb += [issue.inb_dw[r - 1].eq(row_in[r - 1] & col_in) for r in range(1, DW_K_MAX)]
            m.d.comb += [issue.raddr_dw[r - 1].eq(base_dw[r] + ix_cb + pos_word) for r in range(1, DW_K_MAX)]
        row_advance = [bg.eq(0), bg_off.eq(0), g_off.eq(0), oy.eq(oy + 1), bg_near_restart,
                       row_pix.eq(row_pix + Wo), g_pix.eq(row_pix + Wo), oy_last.eq(oy + 2 == Ho),
                       bg_k0.eq(0), k0.eq(0),
                       top.eq(top + s), rel.eq(rel + s), nt_k.eq(nt_k + s),
                       top_slot.eq(next_slot), cur_slot.eq(next_slot),
                       top_base.eq(next_base), cur_base.eq(next_base),
                       rows_released.eq(next_released), need_rows.eq(next_need)]

        with m.FSM():
            with m.State("S_IDLE"):
                with m.If(run_start):
                    m.d.comb += [nxt["kx"].eq(k_one), nxt["ky"].eq(k_one), nxt["cb"].eq(cb_one),
                                 nxt["sg"].eq(sg_one), nxt["ox"].eq(ox_one), nxt["bg"].eq(bg_one), nxt["ge"].eq(0),
                                 nxt["sr"].eq(n_real_m1 == 0)]
                    m.d.sync += [oy.eq(0), bg.eq(0), ox.eq(0), sg.eq(0), cb.eq(0), ky.eq(0), kx.eq(0),
                                 top.eq(-pad), need_rows.eq(st_need),
                                 rel.eq(s - pad), nt_k.eq(s + k - pad),
                                 left.eq(-pad), top_slot.eq(st_slot),
                                 cur_slot.eq(st_slot), g_off.eq(0), bg_off.eq(0),
                                 top_base.eq(st_base), cur_base.eq(st_base),
                                 left_cb.eq(st_left_cb), ix_cb.eq(st_left_cb),
                                 g_stride.eq(Mux(dw, khkw, c_khkw)), cb_woff.eq(0), kpos.eq(0), k0.eq(0), bg_k0.eq(0),
                                 rows_released.eq(0), cb_near_restart, ox_near_restart, bg_near_restart,
                                 row_pix.eq(0), g_pix.eq(0), oy_last.eq(Ho <= 1)]
                    m.next = "S_SETTLE"
            with m.State("S_SETTLE"):        # a row's values settle: the compares below, next_*
                m.next = "S_ROW"
            with m.State("S_ROW"):
                with m.If(~run):
                    m.next = "S_IDLE"
                with m.Elif(s_rows_done):
                    m.d.sync += rows_released.eq(H)
                if P >= BLOCK:
                    with m.Elif(s_row_ready & colwalk):
                        m.next = "S_DWCTL"
                with m.Elif(s_row_ready):
                    m.next = "S_POS"
            with m.State("S_POS"):
                m.d.comb += a_valid.eq(1)
                with m.If(a_adv):
                    # level n steps when z[n-1] and not z[n], and restarts when z[n]: kx, ky, cb,
                    # then sg, ox, bg, and at z[6] the output row (oy). Later statements win.
                    with m.If(~z[1]):
                        m.d.sync += [kx.eq(kx + 1), kpos.eq(kpos + 1), ix_cb.eq(ix_cb + cb_lb)]
                        m.d.comb += nxt["kx"].eq(kx + 2 >= k)
                    with m.Else():
                        m.d.sync += [kx.eq(0), ix_cb.eq(left_cb)]
                        m.d.comb += nxt["kx"].eq(k_one)
                    with m.If(z[1] & ~z[2]):
                        m.d.sync += [ky.eq(ky + 1), kpos.eq(kpos + 1),
                                     cur_slot.eq(Mux(cur_slot + 1 == rows, 0, cur_slot + 1)),
                                     cur_base.eq(Mux(cur_slot + 1 == rows, 0, cur_base + row_words))]
                        m.d.comb += nxt["ky"].eq(ky + 2 >= k)
                    with m.If(z[2]):
                        m.d.sync += [ky.eq(0), kpos.eq(0), cur_slot.eq(top_slot), cur_base.eq(top_base)]
                        m.d.comb += nxt["ky"].eq(k_one)
                    with m.If(z[2] & ~z[3]):
                        m.d.sync += [cb.eq(cb + 1), cb_woff.eq(cb_woff + BLOCK * khkw), cb_near_step]
                        m.d.comb += nxt["cb"].eq(cb_near)
                    with m.If(z[3]):
                        m.d.sync += [cb.eq(0), cb_woff.eq(0), cb_near_restart]
                        m.d.comb += nxt["cb"].eq(cb_one)
                    with m.If(z[3] & ~z[4]):
                        # a block group's first channel is below K (n_bg = ceil(K / step)),
                        # so only a subgroup step can reach an empty group
                        m.d.sync += [sg.eq(sg + 1), g_off.eq(g_off + g_stride), k0.eq(k0 + Mux(dw, D, P))]
                        m.d.comb += [nxt["sg"].eq(sg + 2 >= n_sg), nxt["ge"].eq(bg_last & sg_real_last),
                                     nxt["sr"].eq(sg + 1 >= n_real_m1)]
                    with m.If(z[4]):
                        m.d.sync += [sg.eq(0), g_off.eq(bg_off), k0.eq(bg_k0)]
                        m.d.comb += [nxt["sg"].eq(sg_one), nxt["ge"].eq(0), nxt["sr"].eq(n_real_m1 == 0)]
                    with m.If(z[4] & ~z[5]):
                        m.d.sync += [ox.eq(ox + 1), g_pix.eq(g_pix + 1), left.eq(left + s), left_cb.eq(left_cb + s_cb),
                                     ix_cb.eq(left_cb + s_cb), ox_near_step]
                        m.d.comb += nxt["ox"].eq(ox_near)
                    with m.If(z[5]):
                        m.d.sync += [ox.eq(0), g_pix.eq(row_pix), left.eq(-pad), left_cb.eq(st_left_cb), ix_cb.eq(st_left_cb),
                                     ox_near_restart]
                        m.d.comb += nxt["ox"].eq(ox_one)
                    with m.If(z[5] & ~z[6]):
                        step = Mux(dw, BLOCK, Q)
                        m.d.sync += [bg.eq(bg + 1), bg_off.eq(bg_off + bg_stride), g_off.eq(bg_off + bg_stride),
                                     bg_k0.eq(bg_k0 + step), k0.eq(bg_k0 + step), bg_near_step]
                        m.d.comb += nxt["bg"].eq(bg_near)
                    with m.If(z[6]):
                        m.d.sync += row_advance
                        m.d.comb += nxt["bg"].eq(bg_one)
                        m.next = "S_SETTLE"
            if P >= BLOCK:                   # the depthwise column walk
                with m.State("S_DWCTL"):         # the block's control position: its weights
                    m.d.comb += [a_valid.eq(1), issue.wstart.eq(1), issue.inb.eq(0), issue.last.eq(0),
                                 issue.wnext.eq(dv.w_origin + Mux(bg_last, 0, bg_off + bg_stride)),
                                 issue.wnext_valid.eq(~(bg_last & oy_last))]
                    with m.If(a_adv):
                        m.d.sync += [cur_slot.eq(top_slot), cur_base.eq(top_base),
                                     left.eq(-pad), left_cb.eq(st_left_cb), ix_cb.eq(st_left_cb),
                                     ox.eq(0), g_pix.eq(row_pix), ox_near_restart,
                                     d_to_end.eq(k - 1), d_end.eq(k == 1)]
                        m.d.comb += nxt["ox"].eq(ox_one)
                        m.next = "S_DWCOL"
                with m.State("S_DWCOL"):         # a column; a window ends where d_end
                    m.d.comb += [a_valid.eq(1), issue.last.eq(d_end)]
                    with m.If(a_adv):
                        m.d.sync += [left.eq(left + 1), ix_cb.eq(ix_cb + cb_lb),
                                     d_to_end.eq(Mux(d_end, s - 1, d_to_end - 1)),
                                     d_end.eq(Mux(d_end, s == 1, d_to_end == 1))]
                        with m.If(d_end & ~ox_last):
                            m.d.sync += [ox.eq(ox + 1), g_pix.eq(g_pix + 1), ox_near_step]
                            m.d.comb += nxt["ox"].eq(ox_near)
                        with m.If(d_end & ox_last & ~bg_last):
                            m.d.sync += [bg.eq(bg + 1), bg_off.eq(bg_off + bg_stride), g_off.eq(bg_off + bg_stride),
                                         bg_k0.eq(bg_k0 + BLOCK), k0.eq(bg_k0 + BLOCK), bg_near_step]
                            m.d.comb += nxt["bg"].eq(bg_near)
                            m.next = "S_DWCTL"
                        with m.If(d_end & ox_last & bg_last):
                            m.d.sync += row_advance
                            m.d.comb += nxt["bg"].eq(bg_one)
                            m.next = "S_SETTLE"

        return m
