"""Arithmetic building blocks of the engine's stages, each written once: population count, the
lowest set bit, products by a small constant, the "next step reaches the last" register of a loop
counter, and the shift-and-add multiplier of the descriptor set-up."""
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def popcount(v, n):
    """The number of set bits among v[0:n]."""
    return sum(v[i] for i in range(n))


def lowest_set(m, mask, n, name="lowest"):
    """A signal equal to the index of the lowest set bit of mask[0:n] (0 when none is set),
    combinational: a priority encoder, the lowest bit winning."""
    low = Signal(range(n), name=name)
    for i in reversed(range(n)):
        with m.If(mask[i]):
            m.d.comb += low.eq(i)
    return low


def times_const(v, c):
    """v * c for a constant 0 <= c < 8: shifted copies of v, at most one add or subtract (Yosys
    would map a product by a constant to a DSP: a slow path and a DSP for each)."""
    terms = {0: 0, 1: v, 2: v << 1, 3: (v << 1) + v, 4: v << 2, 5: (v << 2) + v, 6: (v << 2) + (v << 1),
             7: (v << 3) - v}
    return terms[c]


def near(m, name, count, bound):
    """A register kept equal to `count + 2 >= bound` (the next step reaches the last), so that a
    loop's next "last" flag is a flip-flop, not an add and a compare. Returns the flag and the
    statements that go with the counter's step (count + 1) and its restart (0)."""
    flag = Signal(name=f"{name}_near")
    two = Signal(name=f"{name}_two")         # bound <= 2: near after a restart
    m.d.sync += two.eq(bound <= 2)
    return flag, flag.eq(count + 3 >= bound), flag.eq(two)


class SeqMul(wiring.Component):
    """p = a * b by shift and add, one bit of b a cycle: a few cycles once per layer instead of a
    wide multiplier on the clock path.

    Parameters
    ----------
    a_width, b_width : int
        The operands' widths (unsigned); put the narrower operand in b.

    Attributes
    ----------
    a, b : In(a_width), In(b_width)
        The operands, loaded while ``start`` is high.
    start : In(1)
        Load the operands and clear the product.
    p : Out(a_width + b_width)
        The product, valid while ``done``.
    done : Out(1)
        High when b's remaining bits are 0 and ``start`` is low: ``b.bit_length() + 1`` cycles after
        the start cycle (a register kept in step with b, so ``done`` is a flip-flop's output
        gated by ``start``).
    """

    def __init__(self, a_width, b_width):
        self.a_width, self.b_width = a_width, b_width
        super().__init__({"a": In(a_width), "b": In(b_width), "start": In(1),
                          "p": Out(a_width + b_width), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        a = Signal(self.a_width + self.b_width)
        b = Signal(self.b_width)
        b_zero = Signal(init=1)              # b == 0
        m.d.comb += self.done.eq(b_zero & ~self.start)
        with m.If(self.start):
            m.d.sync += [a.eq(self.a), b.eq(self.b), b_zero.eq(self.b == 0), self.p.eq(0)]
        with m.Elif(~b_zero):
            with m.If(b[0]):
                m.d.sync += self.p.eq(self.p + a)
            m.d.sync += [a.eq(a << 1), b.eq(b >> 1), b_zero.eq(b[1:] == 0)]
        return m
