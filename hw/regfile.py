"""The engine's register block: the register map of sw/regs.py on the CSR bus. It holds the
descriptor, STATUS and the counters, and turns a START into a one-cycle pulse for the stages."""
from amaranth import Cat, Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..sw import regs
from ..sw.layout import BLOCK, DW_TAPS, LOADER_WAYS
from .ports import CSRSignature, Descriptor


class Increments(data.StructLayout):
    """What the stages add to the counters each cycle. A 1-bit field is an enable (the counter
    steps by the field's step: 1, or P for the word counters); a wider field is the amount."""
    def __init__(self, lanes):
        super().__init__({
            "STALL_CYCLES": 1,
            "FM_VALUE_BYTES": range(BLOCK * LOADER_WAYS[-1] + 1),   # 0..8 values a record, a record a way
            "FM_BITMAP_BYTES": range(LOADER_WAYS[-1] + 1),          # a bitmap byte a way
            "FM_PORT_BYTES": range(17),     # a beat: 1..16 bytes
            "VALUES_SKIPPED": range(BLOCK * DW_TAPS + 1),   # 0..8 operands a word, 0..72 a depthwise window
            "WEIGHT_BYTES": 1,              # a weight word: P bytes
            "PARAM_BYTES": 1,               # a parameter word: P bytes
            "OUT_BYTES": range(17),         # a beat's strobed bytes
            "MACS": range(max(lanes, BLOCK * DW_TAPS) + 1),  # 0..P an item, 0..72 a depthwise window
        })


def steps(lanes):
    """The step of each 1-bit increment (Increments)."""
    return {"WEIGHT_BYTES": lanes, "PARAM_BYTES": lanes}


class Registers(wiring.Component):
    """The register map (sw/regs.py) on a word-addressed bus.

    A write to a read-write register stores it, except while busy (the descriptor holds for the
    run). Writing 1 to CTRL starts a run: STATUS shows busy and clears done and the error code at
    once, the counters clear, and ``start`` pulses a cycle later, from a register (the bus comes
    from across the die). CYCLES counts every busy cycle, START's state-machine cycle included.

    Parameters
    ----------
    lanes : int
        P, which the ID register reports.
    wbuf_words : int
        The weight buffer's words, which WBUF_WORDS reports (a generation parameter).
    fm_bytes : int
        The feature-map port's beat, which FM_BEAT_BYTES reports.
    out_bytes : int
        The output port's beat, which OUT_BEAT_BYTES reports.

    Attributes
    ----------
    csr : In(CSRSignature())
        The register bus; ``r_data`` is combinational on ``addr``.
    desc : Out(Descriptor())
        The descriptor registers.
    start : Out(1)
        One cycle, the cycle after START's write.
    busy : Out(1)
        STATUS.busy: from START's write until ``end``.
    error : Out(1)
        STATUS's error code is not 0.
    end : In(1)
        The run (or the refusal of its descriptor) ends: STATUS.busy falls, STATUS.done rises and
        the error code takes ``end_error``.
    end_error : In(8)
        With ``end``: 0, or the code of the rule the descriptor broke.
    inc : In(Increments(lanes))
        The counters' increments this cycle.
    """

    def __init__(self, lanes, wbuf_words=0, fm_bytes=1, out_bytes=1):
        self.P, self.wbuf_words, self.fm_bytes, self.out_bytes = lanes, wbuf_words, fm_bytes, out_bytes
        super().__init__({"csr": In(CSRSignature()), "desc": Out(Descriptor()), "start": Out(1), "busy": Out(1), "error": Out(1),
                          "end": In(1), "end_error": In(8), "inc": In(Increments(lanes))})

    def elaborate(self, platform):
        m = Module()
        reg = {r.name: Signal(r.width, name=f"r_{r.name.lower()}") for r in regs.REGISTERS
               if r.access == "rw" or r.name in regs.COUNTERS}
        status_busy = Signal()
        status_done = Signal()
        err = Signal(8)
        m.d.comb += [self.desc[name].eq(reg[name]) for name in regs.DESCRIPTOR]
        m.d.comb += [self.busy.eq(status_busy), self.error.eq(err != 0)]
        m.d.sync += self.start.eq(0)
        rdata = [Const(0, 32)] * len(regs.REGISTERS)
        for r in regs.REGISTERS:
            a = regs.ADDR[r.name]
            if r.name == "ID":
                rdata[a] = Const(regs.engine_id(self.P), 32)
            elif r.name == "WBUF_WORDS":
                rdata[a] = Const(self.wbuf_words, 32)
            elif r.name == "FM_BEAT_BYTES":
                rdata[a] = Const(self.fm_bytes, 32)
            elif r.name == "OUT_BEAT_BYTES":
                rdata[a] = Const(self.out_bytes, 32)
            elif r.name == "STATUS":
                rdata[a] = Cat(status_busy, status_done, Const(0, 6), err)
            elif r.name in reg:
                rdata[a] = reg[r.name]
        with m.Switch(self.csr.addr):
            for a, v in enumerate(rdata):
                with m.Case(a):
                    m.d.comb += self.csr.r_data.eq(v)
        with m.If(self.csr.w_stb & ~status_busy):
            with m.Switch(self.csr.addr):
                for r in regs.REGISTERS:
                    if r.access == "rw":
                        with m.Case(regs.ADDR[r.name]):
                            m.d.sync += reg[r.name].eq(self.csr.w_data)
                with m.Case(regs.ADDR["CTRL"]):
                    with m.If(self.csr.w_data[0]):
                        m.d.sync += [self.start.eq(1), status_busy.eq(1), status_done.eq(0), err.eq(0)]
                        m.d.sync += [reg[name].eq(0) for name in regs.COUNTERS]
        with m.If(self.end):
            m.d.sync += [err.eq(self.end_error), status_busy.eq(0), status_done.eq(1)]

        # the counters, after START's clear (a later statement wins; no stage counts in that cycle)
        with m.If(status_busy):
            m.d.sync += reg["CYCLES"].eq(reg["CYCLES"] + 1)
        step = steps(self.P)
        for name in Increments(self.P).members:
            inc = self.inc[name]
            with m.If(inc != 0):
                m.d.sync += reg[name].eq(reg[name] + (step.get(name, 1) if len(inc) == 1 else inc))
        return m
