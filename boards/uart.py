"""8N1 UART receiver and transmitter with a fixed divisor (clock cycles per bit), as lib.stream
byte streams. The receiver synchronises the pin, restarts its bit clock on the start bit's
falling edge, samples in the middle of each bit and drops frames whose stop bit is 0."""
from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out


def check_divisor(divisor: int) -> int:
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"UART divisor (clock cycles per bit) must be an integer >= 4, got {divisor!r}: "
                         f"lower the baud rate or raise the clock")
    return divisor


class UARTRx(wiring.Component):
    """`rx`: the pin (idle high). `data`: received bytes; a byte not taken before the next one
    arrives is overwritten and counted in `overruns`."""

    def __init__(self, divisor):
        self.divisor = check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8)), "overruns": Out(16)})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bit = Signal(range(9))
        shreg = Signal(8)
        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):                        # start bit: sample the first data bit at 1.5 bits
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), bit.eq(0)]
                    m.next = "BITS"
            with m.State("BITS"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += timer.eq(self.divisor - 1)
                    with m.If(bit == 8):                # stop bit
                        with m.If(rx):
                            m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
                            with m.If(self.data.valid & ~self.data.ready):
                                m.d.sync += self.overruns.eq(self.overruns + 1)
                        m.next = "STOP"
                    with m.Else():
                        m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bit.eq(bit + 1)]
            with m.State("STOP"):                       # wait for the line to go idle
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """`data`: bytes to send. `tx`: the pin (idle high)."""

    def __init__(self, divisor):
        self.divisor = check_divisor(divisor)
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shreg = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        m.d.comb += [self.tx.eq(shreg[0]), self.data.ready.eq(bits == 0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [shreg.eq((self.data.payload << 1) | (1 << 9)), bits.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(bits != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [timer.eq(self.divisor - 1), shreg.eq((shreg >> 1) | (1 << 9)), bits.eq(bits - 1)]
        return m
