"""Small stream components and the credit counter the engine's stages hand data over with.

* ``PipeRegister``: a stream pipeline register (registered valid and payload);
* ``TwoPlaceQueue``: a two-place queue whose places load on the producer's side only;
* ``credits()``: a counter of free places in a downstream queue, whose "a place is left" flag is
  itself a flip-flop, so a producer's enable never waits on the queue's fill level.

Each exists for the clock (docs/engine.md, "Registered hand-overs"); ``lib.fifo`` has no stage
with these exact properties (a full-throughput register slice whose ready is not a function of
the consumer's ready through gates, or a queue whose storage enables ignore the consumer)."""
from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class PipeRegister(wiring.Component):
    """A stream pipeline register: ``o.valid`` and ``o.payload`` are flip-flops, so the payload's
    logic and the route to the consumer are in different cycles. Full throughput; one cycle of
    latency.

    Parameters
    ----------
    shape : shape-like
        The payload's shape.

    Attributes
    ----------
    i : In(stream.Signature(shape))
        The producer's side. ``i.ready`` is ``o.ready`` or an empty register (combinational).
    o : Out(stream.Signature(shape))
        The consumer's side; ``valid`` and ``payload`` are registers.
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m


class TwoPlaceQueue(wiring.Component):
    """A two-place stream queue for a wide payload whose consumer decides late: the places load on
    the producer's side only (their enables do not depend on ``o.ready``), the output is the place
    a read pointer selects, and ``o.valid`` and ``i.ready`` are flip-flops. The consumer's decision
    then reaches a pointer and a count, not the payload's flip-flops. Full throughput; one cycle of
    latency.

    Parameters
    ----------
    shape : shape-like
        The payload's shape.

    Attributes
    ----------
    i : In(stream.Signature(shape))
        The producer's side; ``i.ready`` is a register (a place is free).
    o : Out(stream.Signature(shape))
        The consumer's side; ``o.valid`` is a register, ``o.payload`` a selection of two registers.
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        place = [Signal.like(self.i.payload, name=f"place{n}") for n in range(2)]
        w_ptr = Signal()
        r_ptr = Signal()
        count = Signal(range(3))
        count_next = Signal(range(3))
        i_ready = Signal(init=1)
        o_valid = Signal()
        push = self.i.valid & i_ready
        pop = self.o.ready & o_valid
        m.d.comb += [self.i.ready.eq(i_ready), self.o.valid.eq(o_valid),
                     self.o.payload.eq(Mux(r_ptr, place[1], place[0])),
                     count_next.eq(count + push - pop)]
        m.d.sync += [count.eq(count_next), o_valid.eq(count_next != 0), i_ready.eq(count_next != 2)]
        with m.If(push):
            m.d.sync += w_ptr.eq(~w_ptr)
            with m.If(w_ptr):
                m.d.sync += place[1].eq(self.i.payload)
            with m.Else():
                m.d.sync += place[0].eq(self.i.payload)
        with m.If(pop):
            m.d.sync += r_ptr.eq(~r_ptr)
        return m


def credits(m, places, name, take, give, *, late=False):
    """A credit counter for a queue of `places`: `take` claims a place, `give` returns one.
    Returns a flip-flop that is 1 while a credit is left, so that the issuer's enable is a
    register, not a compare of the count behind it.

    late: `take` is the claim of the cycle before (a register next to the counter), so the
    issuer's enable and its fan-out are not in the counter's loop. One claim may then be in flight
    uncounted: the flag means two credits left, and the queue needs one place more for the same
    throughput."""
    count = Signal(range(places + 1), init=places, name=f"{name}_credits")
    left = Signal(init=1, name=f"{name}_room")
    count_next = Signal.like(count, name=f"{name}_credits_next")
    m.d.comb += count_next.eq(count - take + give)
    m.d.sync += [count.eq(count_next), left.eq(count_next > 1 if late else count_next != 0)]
    return left
