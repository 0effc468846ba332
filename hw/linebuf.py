"""The line buffer: the input rows the sequencer reads, in a bank per loader way (channel block cb
of a pixel in bank cb % ways, word cb // ways of that pixel: sw/layout.linebuf_cb), each bank
written by its own way's parser (hw/loader.py), so that the loader can write a word a cycle per way.
It has `reads` read ports (one, or three for the depthwise column walk's rows 0, 1 and 2), each a
copy of every bank, written together; a read gives both banks' words at its address and the bank
it names chooses, two cycles later (the banks' read data is registered inside them: hw/ram.py)."""
from amaranth import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..sw.layout import check_ways
from .ram import RegisteredRAM
from .scanner import Word


class LineBuffer(wiring.Component):
    """`depth` words in all (``depth // ways`` a bank), `ways` banks, `reads` read ports.

    Attributes
    ----------
    w_en, w_addr, w_data : In(ways), In(ArrayLayout(range(depth // ways), ways)), In(ArrayLayout(Word(), ways))
        Bank j's write port (way j's parser).
    r_addr, r_bank : In(ArrayLayout(range(depth // ways), reads)), In(ArrayLayout(1, reads))
        Read port r's word address within a bank and its bank (0 with one way).
    r_data : Out(ArrayLayout(Word(), reads))
        Read port r's word, two cycles after its address.
    """

    def __init__(self, depth, *, ways=1, reads=1):
        check_ways(ways)
        self.depth, self.ways, self.reads = depth, ways, reads
        self.bank_depth = depth // ways
        super().__init__({
            "w_en": In(ways), "w_addr": In(data.ArrayLayout(range(self.bank_depth), ways)),
            "w_data": In(data.ArrayLayout(Word(), ways)),
            "r_addr": In(data.ArrayLayout(range(self.bank_depth), reads)),
            "r_bank": In(data.ArrayLayout(1, reads)),
            "r_data": Out(data.ArrayLayout(Word(), reads)),
        })

    def elaborate(self, platform):
        m = Module()
        for r in range(self.reads):
            banks = []
            for j in range(self.ways):
                name = ("bank" if r == 0 else f"dw{r}_bank") + (f"{j}" if self.ways > 1 else "")
                m.submodules[name] = bank = RegisteredRAM(Word(), self.bank_depth)
                m.d.comb += [bank.w_en.eq(self.w_en[j]), bank.w_addr.eq(self.w_addr[j]),
                             bank.w_data.eq(self.w_data[j]), bank.r_addr.eq(self.r_addr[r])]
                banks.append(bank)
            if self.ways == 1:
                m.d.comb += self.r_data[r].eq(banks[0].r_data)
            else:
                # the bank, two cycles late with its data: a choice between two registered words
                sel1 = Signal(name=f"r{r}_bank1")
                sel2 = Signal(name=f"r{r}_bank2")
                m.d.sync += [sel1.eq(self.r_bank[r]), sel2.eq(sel1)]
                m.d.comb += self.r_data[r].eq(Mux(sel2, banks[1].r_data, banks[0].r_data))
        return m
