"""The scanner: the zero-skipping heart of the engine. For each line-buffer word the sequencer
presents, it emits one MAC item per operand that is present (|x| > EPS_IN, set by the loader) and
requests that operand's weight word; a word with no operand costs one cycle and no fetch."""
from amaranth import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, DW_K_MAX, dw_lanes
from .arith import lowest_set, popcount
from .mac import Item
from .ports import Descriptor
from .queues import credits
from .setup import Derived


class Word(data.StructLayout):
    """A line-buffer word: the eight values of one channel block at one pixel, and the mask of
    those to use (|x| > EPS_IN and channel < C; every channel < C in dense mode)."""
    def __init__(self):
        super().__init__({"values": data.ArrayLayout(signed(8), BLOCK), "mask": 8})


class Position(data.StructLayout):
    """One kernel position of one output group, from the sequencer: the word there and what the
    scanner needs to turn it into items. With P >= 8 also the depthwise column walk's: a control
    position (``wstart``) or a whole input column, its rows 1 .. DW_K_MAX - 1 beside ``word`` (row 0)."""
    def __init__(self, lanes):
        fields = {
            "word": Word(),
            "inb": 1,                       # inside the input (not padding)
            "last": 1,                      # the group's last position (column walk: a window's last column)
            "wbase": 32,                    # the weight word of channel 0 of the block at this tap
            "chmask": 8,                    # the block's channels < C (0 for a group past K)
            "dwoff": 3,                     # depthwise: the subgroup's first lane in the block
            "nl": range(lanes + 1),         # standard: the group's real output channels
        }
        if lanes >= BLOCK:
            fields.update({
                "wstart": 1,                # column walk: a control position, the block's weights at wbase
                "wnext": 32,                # column walk, a control position: the next block's weights
                "wnext_valid": 1,           # ... if there is a next block (not the run's last)
                "inb_dw": DW_K_MAX - 1,     # column walk: rows 1 .. inside the input (and below k)
                "words_dw": data.ArrayLayout(Word(), DW_K_MAX - 1),   # column walk: the column's rows 1 ..
            })
        super().__init__(fields)


class Scanner(wiring.Component):
    """One MAC item per present operand; the weight address of each.

    Standard layers: one item a cycle per set mask bit, lowest first (the operand x[0] broadcast
    to the P lanes, the weight word of channel i at ``wbase + i k k``). Depthwise: the word's D
    lanes of this subgroup in one item, one weight word. Padding gives no operand (zero operands
    in dense mode). An item's weight address is a selection by its lowest operand: the channels'
    addresses are added when the word is taken. Items leave through a queue of ``fifo_depth``
    places entered on credits (a register of free places, so the hand-over does not wait on the
    queue's level logic within a cycle).

    Parameters
    ----------
    lanes : int
        P.
    fifo_depth : int
        The item queue's places (at least 3).

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer (DEPTHWISE, DENSE_MODE; khkw_x).
    run : In(1)
        A run is on: items and weight requests go out only then.
    clear : In(1)
        The run's first cycle: drop a word in progress.
    i : In(stream.Signature(Position(lanes)))
        The positions.
    w_addr : Out(stream.Signature(32))
        Weight word addresses, one per multiplying item, in item order.
    o : Out(stream.Signature(Item()))
        The items.
    macs : Out(range(lanes + 1))
        MACs on real output channels issued with the item queued a cycle before (registered).
    skipped : Out(4)
        Operands skipped in the word taken a cycle before (in-range channels without an operand).
    """

    def __init__(self, lanes, fifo_depth):
        if fifo_depth < 3:
            raise ValueError(f"fifo_depth={fifo_depth}: the MAC item queue needs at least 3 places")
        self.P, self.D, self.fifo_depth = lanes, dw_lanes(lanes), fifo_depth
        super().__init__({"desc": In(Descriptor()), "derived": In(Derived(lanes)), "run": In(1), "clear": In(1),
                          "i": In(stream.Signature(Position(lanes))), "w_addr": Out(stream.Signature(32)),
                          "o": Out(stream.Signature(Item())), "macs": Out(range(lanes + 1)), "skipped": Out(4)})

    def elaborate(self, platform):
        m = Module()
        P, D = self.P, self.D
        dw, dense = self.desc.DEPTHWISE, self.desc.DENSE_MODE
        khkw_x = self.derived.khkw_x
        sc_valid = Signal()
        sc_mask = Signal(8)
        sc_vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        sc_last = Signal()
        # the weight address of each channel's operand, wbase + i k k (depthwise: wbase, as
        # khkw_x[0] = 0), added when the word is taken
        sc_waddr = Array(Signal(32, name=f"sc_waddr{i}") for i in range(BLOCK))
        sc_dwoff = Signal(3)                 # depthwise: the subgroup's first lane in the block
        sc_nl = Signal(range(P + 1))         # standard: the group's real output channels
        m.submodules.items = items = SyncFIFOBuffered(width=Item().size, depth=self.fifo_depth)
        item = Signal(Item())
        m.d.comb += [items.w_data.eq(item), self.o.valid.eq(items.r_rdy), self.o.payload.eq(items.r_data),
                     items.r_en.eq(self.o.valid & self.o.ready)]

        q = self.i.payload                   # the position offered
        b_mask = Signal(8)
        # padding: no operand (sparse) or zero operands (dense mode)
        m.d.comb += b_mask.eq(Mux(q.inb, q.word.mask, Mux(dense, q.chmask, 0)))
        dw_lanes_mask = Signal(8)            # the D lanes of this depthwise subgroup, shifted down
        m.d.comb += dw_lanes_mask.eq((b_mask >> q.dwoff) & ((1 << D) - 1))

        low = lowest_set(m, sc_mask, BLOCK, "sc_low")
        rest = Signal(8)
        m.d.comb += rest.eq(sc_mask & (sc_mask - 1))
        sc_single = Signal()                 # at most one bit of sc_mask set (rest == 0), kept in step with sc_mask
        sc_any = Signal()                    # sc_mask != 0, kept in step with sc_mask
        # free places in the item queue as a register (pushes and pops counted). For a
        # SyncFIFOBuffered of depth >= 3 this equals its w_rdy: its output register is empty only
        # while its inner queue holds at most one entry
        room = credits(m, self.fifo_depth, "item", items.w_en, items.r_en & items.r_rdy)
        rest2 = Signal(8)
        m.d.comb += rest2.eq(rest & (rest - 1))
        emit = Signal()
        emit_mac = Signal()
        consume = Signal()                   # the current word is finished this cycle
        w_issue_addr = Signal(32)
        vals_sh = Signal(data.ArrayLayout(signed(8), BLOCK))
        m.d.comb += vals_sh.eq(sc_vals.as_value() >> (sc_dwoff * 8))
        with m.If(sc_valid):
            m.d.comb += [emit_mac.eq(sc_any), emit.eq(sc_any | sc_last), item.mac.eq(sc_any)]
            ok = room & (~sc_any | self.w_addr.ready)
            with m.If(dw):
                m.d.comb += [w_issue_addr.eq(sc_waddr[0]), item.last.eq(sc_last)]
                for i in range(BLOCK):
                    m.d.comb += item.x[i].eq(Mux(sc_mask[i], vals_sh[i], 0))
                m.d.comb += consume.eq(ok)
            with m.Else():
                m.d.comb += [w_issue_addr.eq(sc_waddr[low]),
                             item.last.eq(sc_last & sc_single), item.x[0].eq(sc_vals[low])]
                with m.If(ok):
                    m.d.sync += [sc_mask.eq(rest), sc_single.eq(rest2 == 0), sc_any.eq(~sc_single)]
                    m.d.comb += consume.eq(sc_single)
        with m.If(self.run):
            m.d.comb += [self.w_addr.valid.eq(sc_valid & emit_mac & room),
                         self.w_addr.payload.eq(w_issue_addr),
                         items.w_en.eq(sc_valid & emit & room & (~emit_mac | self.w_addr.ready))]
        mac_lanes = Signal(range(P + 1))
        with m.If(dw):
            m.d.comb += mac_lanes.eq(popcount(sc_mask, BLOCK))
        with m.Else():
            m.d.comb += mac_lanes.eq(sc_nl)
        # counter increments are registered (off the scanner's path)
        m.d.sync += [self.macs.eq(Mux(items.w_en & item.mac, mac_lanes, 0)), self.skipped.eq(0)]

        take = Signal()
        m.d.comb += [self.i.ready.eq(~sc_valid | consume), take.eq(self.i.valid & self.i.ready)]
        with m.If(take):
            mask_in = Mux(dw, dw_lanes_mask, b_mask)
            m.d.sync += [sc_valid.eq(1), sc_mask.eq(mask_in), sc_single.eq((mask_in & (mask_in - 1)) == 0),
                         sc_any.eq(mask_in != 0), sc_vals.eq(Mux(q.inb, q.word.values.as_value(), 0)),
                         sc_last.eq(q.last), sc_dwoff.eq(q.dwoff), sc_nl.eq(q.nl)]
            m.d.sync += [sc_waddr[i].eq(q.wbase + khkw_x[i]) for i in range(BLOCK)]
            # operands skipped: in-range channels / lanes without an operand
            avail = Signal(8)
            with m.If(dw):
                m.d.comb += avail.eq((q.chmask >> q.dwoff) & ((1 << D) - 1))
            with m.Else():
                m.d.comb += avail.eq(q.chmask)
            m.d.sync += self.skipped.eq(popcount(avail & ~mask_in, 8))
        with m.Elif(consume):
            m.d.sync += sc_valid.eq(0)
        with m.If(self.clear):
            m.d.sync += sc_valid.eq(0)
        return m
