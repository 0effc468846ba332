"""The MAC lanes: P multiply-accumulators fed by the scanner's items and the weight words."""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK
from .dsp import PipelinedMul


class Item(data.StructLayout):
    """One MAC item, from the scanner: an operand (standard: x[0], broadcast to the P lanes;
    depthwise: x[p] for lane p), whether it multiplies (an item that only ends a group does not),
    and whether it is the last of its pixel-group."""
    def __init__(self):
        super().__init__({"x": data.ArrayLayout(signed(8), BLOCK), "mac": 1, "last": 1})


class MACLanes(wiring.Component):
    """P lanes of int8 x int8 + int32, three stages: M0 registers the popped item's P operand
    pairs (next to the multipliers), M1 the P products (both are hw/dsp.PipelinedMul's registers),
    M2 accumulates them. An item that ends a pixel-group pops only when the hand-off is free and
    no other such item is in M0 or M1, so M2 never waits; "a last item must wait" is a register
    made from the next cycle's values, so the pop's decision takes no gates on them.

    The item stream needs no run flag (a register spread over the die): the scanner fills it in a
    run only, and a run ends only after the last item's result is written. The weight stream's
    ``valid`` may come while no item is there (the parameter load shares the weight port): the
    lanes take a word only with an item that multiplies.

    Parameters
    ----------
    lanes : int
        P.

    Attributes
    ----------
    depthwise : In(1)
        DEPTHWISE: lane p multiplies x[p] (p < 8), else every lane multiplies x[0].
    clear : In(1)
        The run's first cycle: empty the pipeline and the accumulators.
    i : In(stream.Signature(Item()))
        The items. ``i.ready`` depends on the item (a multiplying item waits for its weight word,
        a last item while the hand-off is taken or another last item is in flight).
    w : In(stream.Signature(8 * lanes))
        The weight words, lane p in bits 8p..8p+7; taken with each multiplying item.
    o : Out(stream.Signature(data.ArrayLayout(signed(32), lanes)))
        A pixel-group's accumulators (wrapping int32), held until taken.
    """

    def __init__(self, lanes):
        self.P = lanes
        super().__init__({"depthwise": In(1), "clear": In(1), "i": In(stream.Signature(Item())),
                          "w": In(stream.Signature(8 * lanes)),
                          "o": Out(stream.Signature(data.ArrayLayout(signed(32), lanes)))})

    def elaborate(self, platform):
        m = Module()
        P = self.P
        head = self.i.payload
        acc = [Signal(signed(32), name=f"acc{p}") for p in range(P)]
        hand_full = self.o.valid
        hand = [self.o.payload[p] for p in range(P)]
        hand_take = Signal()
        m.d.comb += hand_take.eq(self.o.valid & self.o.ready)
        pop = Signal()
        m0_valid = Signal()
        m0_last = Signal()
        muls = [PipelinedMul() for p in range(P)]       # M0 and M1 are its two registers
        for p in range(P):
            m.submodules[f"mult{p}"] = muls[p]
        m1_valid = Signal()
        m1_last = Signal()
        m1_prod = [muls[p].p for p in range(P)]
        last_wait = Signal()
        m.d.sync += last_wait.eq((pop & head.last) | (m0_valid & m0_last) |
                                 (m1_valid & m1_last) | (hand_full & ~hand_take))
        m.d.comb += [self.i.ready.eq((~head.mac | self.w.valid) & (~head.last | ~last_wait)),
                     pop.eq(self.i.valid & self.i.ready), self.w.ready.eq(pop & head.mac)]
        wlane = [self.w.payload[8 * p:8 * p + 8].as_signed() for p in range(P)]
        m.d.sync += [m0_valid.eq(pop), m0_last.eq(head.last), m1_valid.eq(m0_valid), m1_last.eq(m0_last)]
        for p in range(P):
            x = Mux(self.depthwise, head.x[p] if p < BLOCK else 0, head.x[0])
            m.d.comb += [muls[p].a.eq(Mux(head.mac, x, 0)), muls[p].b.eq(wlane[p])]
            total = (acc[p] + m1_prod[p])[:32].as_signed()
            with m.If(m1_valid):
                with m.If(m1_last):
                    m.d.sync += [acc[p].eq(0), hand[p].eq(total)]
                with m.Else():
                    m.d.sync += acc[p].eq(total)
        with m.If(m1_valid & m1_last):
            m.d.sync += hand_full.eq(1)
        with m.Elif(hand_take):
            m.d.sync += hand_full.eq(0)
        with m.If(self.clear):
            m.d.sync += [hand_full.eq(0), m0_valid.eq(0), m1_valid.eq(0), last_wait.eq(0)]
            for p in range(P):
                m.d.sync += acc[p].eq(0)
        return m
