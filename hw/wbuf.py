"""The weight buffer: the layer's weights, read once through the weight port into on-chip block
RAM before the run (the FILL phase) and served from there to the MAC lanes for every operand, so
that a layer's weight traffic is its weight tensor once instead of a word per operand."""
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .ports import Descriptor
from .ram import RegisteredRAM
from .setup import Derived


class WeightBuffer(wiring.Component):
    """``depth`` words of P bytes (a generation parameter; the register WBUF_WORDS reports it).

    Fill (``active``, the control's FILL phase, which follows PARAMS when WEIGHT_BUFFER = 1): the
    words W_BASE .. W_BASE + w_fill - 1 are requested through the weight port and written, as they
    arrive, to words 0 .. w_fill - 1, each a cycle after it arrives, from registers. ``done`` is a
    flip-flop: every word has arrived and been written.

    Run: ``r_addr`` takes a buffer word address (the sequencer's addresses start at the derived
    ``w_origin``, 0 here) every cycle it is offered; the word enters the output queue two
    cycles later (the RAM's registered read) through a queue of ``places``. It
    never refuses an address: the words requested and not yet taken are at most the MAC items
    waiting in the scanner's item queue (one word each, requested as the item enters it), so a
    queue of that queue's ``fifo_depth`` places can never overflow. At a run's end the queue is
    empty (every MAC item takes its word), so the next run starts with it empty.

    Parameters
    ----------
    lanes : int
        P: bytes a word.
    depth : int
        Words (at least 1).
    places : int
        The output queue's places: the scanner's item-queue depth.

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer (W_BASE; w_fill).
    begin : In(1)
        The set-up has accepted the descriptor: clear the counts.
    active : In(1)
        The FILL phase: the buffer owns the weight port.
    done : Out(1)
        Every word has arrived and is written (valid from the second cycle of ``active``).
    port_addr : Out(stream.Signature(32)), port_data : In(stream.Signature(8 * lanes))
        The weight port, while ``active``; always ready for data.
    r_addr : In(stream.Signature(range(depth))), r_data : Out(stream.Signature(8 * lanes))
        The run's reads.
    word : Out(1)
        A fill word arrives (the WEIGHT_BYTES counter's increment).
    waiting : Out(1)
        Fill words requested had not all arrived a cycle before (for the stall count).
    """

    def __init__(self, lanes, depth, places):
        if depth < 1:
            raise ValueError(f"weight buffer depth {depth}: at least one word")
        self.P, self.depth, self.places = lanes, depth, places
        super().__init__({"desc": In(Descriptor()), "derived": In(Derived(lanes)), "begin": In(1), "active": In(1),
                          "done": Out(1), "port_addr": Out(stream.Signature(32)),
                          "port_data": In(stream.Signature(8 * lanes)),
                          "r_addr": In(stream.Signature(range(depth))), "r_data": Out(stream.Signature(8 * lanes)),
                          "word": Out(1), "waiting": Out(1)})

    def elaborate(self, platform):
        m = Module()
        P = self.P
        m.submodules.ram = ram = RegisteredRAM(8 * P, self.depth)

        # fill: counts of words requested and received, compared with the total (registers)
        issued = Signal(36)
        received = Signal(36)
        total = Signal(36)
        more = Signal()                      # issued < total, kept as a register
        w_en = Signal()
        w_addr = Signal(range(self.depth))
        w_data = Signal(8 * P)
        m.d.sync += w_en.eq(0)
        m.d.comb += [ram.w_en.eq(w_en), ram.w_addr.eq(w_addr), ram.w_data.eq(w_data)]
        # for the stall count only: a register (a cycle late), so the 36-bit compare is off the
        # counters' paths
        m.d.sync += self.waiting.eq(received != issued)
        with m.If(self.begin):
            m.d.sync += [issued.eq(0), received.eq(0), total.eq(self.derived.w_fill),
                         more.eq(self.derived.w_fill != 0), self.done.eq(0)]
        with m.If(self.active):
            m.d.comb += [self.port_addr.valid.eq(more),
                         self.port_addr.payload.eq(self.desc.W_BASE + issued),
                         self.port_data.ready.eq(1)]
            with m.If(self.port_addr.valid & self.port_addr.ready):
                m.d.sync += [issued.eq(issued + 1), more.eq(issued + 1 != total)]
            with m.If(self.port_data.valid):
                m.d.sync += [received.eq(received + 1), w_en.eq(1), w_addr.eq(received), w_data.eq(self.port_data.payload)]
                m.d.comb += self.word.eq(1)
            # every word in and its write done: the count reached the total a cycle ago and no
            # write is pending
            m.d.sync += self.done.eq((received == total) & ~w_en)

        # run: the RAM's two cycles (the address comes registered), then the queue
        r_valid = Signal(2)
        m.submodules.queue = queue = SyncFIFOBuffered(width=8 * P, depth=self.places)
        m.d.comb += [self.r_addr.ready.eq(1), ram.r_addr.eq(self.r_addr.payload)]
        m.d.sync += r_valid.eq((r_valid << 1) | self.r_addr.valid)
        m.d.comb += [queue.w_en.eq(r_valid[1]), queue.w_data.eq(ram.r_data)]
        m.d.comb += [self.r_data.valid.eq(queue.r_rdy), self.r_data.payload.eq(queue.r_data),
                     queue.r_en.eq(self.r_data.ready)]
        return m
