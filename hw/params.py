"""The parameter loader: each output channel's bias, multiplier and shift (sw/layout.py's
parameter words) through the weight read port into the output stage's parameter buffer, before
the run starts."""
from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..sw.layout import PARAM_BYTES, param_words
from .output import Params
from .ports import Descriptor


class ParamLoader(wiring.Component):
    """OUT_K x param_words(P) words from P_BASE, assembled into one parameter buffer entry per
    channel. The phase ends on a flip-flop, ``done`` = (the next received count == the total), so
    the control's next state holds no 32-bit compare: both compares are of registers (the total
    less one is set while the control fills its tables), and the word arriving only selects
    between them. A completed entry is written a cycle later from registers (the block RAMs are
    far from the weight queue).

    Parameters
    ----------
    lanes : int
        P (bytes a weight word).
    max_channels : int
        The parameter buffer's depth.

    Attributes
    ----------
    desc : In(Descriptor())
        The layer (OUT_K, P_BASE).
    begin : In(1)
        The set-up has accepted the descriptor: clear the counts, set the total.
    prepare : In(1)
        The control fills its tables (the cycles between ``begin`` and ``active``).
    active : In(1)
        The parameter phase: the loader owns the weight port.
    done : Out(1)
        Every word has arrived (valid from the first cycle of ``active``).
    w_addr : Out(stream.Signature(32))
        Word addresses (while ``active``).
    w_data : In(stream.Signature(8 * lanes))
        The words; always ready while ``active``.
    p_w_en, p_w_addr, p_w_data : Out(1), Out(range(max_channels)), Out(Params())
        The parameter buffer's write port (registers).
    word : Out(1)
        A word arrives (the PARAM_BYTES counter's increment).
    waiting : Out(1)
        Words requested have not all arrived (for the stall count).
    """

    def __init__(self, lanes, max_channels):
        self.P, self.PW, self.max_channels = lanes, param_words(lanes), max_channels
        super().__init__({"desc": In(Descriptor()), "begin": In(1), "prepare": In(1), "active": In(1), "done": Out(1),
                          "w_addr": Out(stream.Signature(32)), "w_data": In(stream.Signature(8 * lanes)),
                          "p_w_en": Out(1), "p_w_addr": Out(range(max_channels)), "p_w_data": Out(Params()),
                          "word": Out(1), "waiting": Out(1)})

    def elaborate(self, platform):
        m = Module()
        P, PW = self.P, self.PW
        assert PARAM_BYTES == 12
        pa_issue = Signal(32)                # words requested
        pa_recv = Signal(32)                 # words received
        pa_done = self.done                  # pa_recv == pa_total, a register made from next values
        pa_recv_next = Signal(32)
        pa_total_m1 = Signal(32)
        pa_total = Signal(32)
        pa_asm = Signal(8 * P * PW)
        pa_j = Signal(range(PW + 1))
        pa_k = Signal(16)
        w_req, w_in, active = self.w_addr, self.w_data, self.active
        with m.If(self.begin):
            m.d.sync += [pa_issue.eq(0), pa_recv.eq(0), pa_total.eq(self.desc.OUT_K * PW), pa_j.eq(0), pa_k.eq(0)]
        with m.If(self.prepare):
            m.d.sync += pa_total_m1.eq(pa_total - 1)
        pw_en = self.p_w_en
        m.d.sync += pw_en.eq(0)
        m.d.comb += self.waiting.eq(pa_recv < pa_issue)
        m.d.comb += pa_recv_next.eq(pa_recv + (active & w_in.valid))
        m.d.sync += pa_done.eq(Mux(active & w_in.valid, pa_recv == pa_total_m1, pa_recv == pa_total))
        with m.If(active):
            m.d.comb += [w_req.valid.eq(pa_issue < pa_total), w_req.payload.eq(self.desc.P_BASE + pa_issue),
                         w_in.ready.eq(1)]
            with m.If(w_req.valid & w_req.ready):
                m.d.sync += pa_issue.eq(pa_issue + 1)
            with m.If(w_in.valid):
                m.d.sync += pa_recv.eq(pa_recv_next)
                m.d.comb += self.word.eq(1)
                word = Signal(8 * P * PW)
                m.d.comb += word.eq(Cat(pa_asm[8 * P:], w_in.payload) if PW > 1 else w_in.payload)
                m.d.sync += pa_asm.eq(word)
                with m.If(pa_j == PW - 1):
                    m.d.sync += [pa_j.eq(0), pa_k.eq(pa_k + 1)]
                    m.d.sync += [pw_en.eq(1), self.p_w_addr.eq(pa_k),
                                 self.p_w_data.bias.eq(word[0:32]), self.p_w_data.mult.eq(word[32:64]),
                                 self.p_w_data.shift.eq(word[64:70])]
                with m.Else():
                    m.d.sync += pa_j.eq(pa_j + 1)
        return m
