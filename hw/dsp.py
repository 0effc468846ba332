"""A multiplier with registered operands and product, whose registers are the ECP5 DSP's own."""
from amaranth import ClockSignal, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class PipelinedMul(wiring.Component):
    """p = a * b, two cycles after a and b: the operands are registered, then the product, both
    while `ce` is high. On the ECP5 both registers are the MULT18X18D's own (its input and output
    registers), so no fabric route sits between a register and the multiplier; elsewhere they are
    flip-flops around a `*` that Yosys maps to a DSP (or to logic). Same cycle behaviour either
    way. Operands of up to 18 bits signed or 17 unsigned; `p` has the shape of `a * b`."""

    def __init__(self, a_shape=signed(8), b_shape=signed(8)):
        self.a_shape, self.b_shape = a_shape, b_shape
        for s in (a_shape, b_shape):
            if s.width > (18 if s.signed else 17):
                raise ValueError(f"operand {s} does not fit an 18 x 18 signed multiplier")
        p_shape = (Signal(a_shape) * Signal(b_shape)).shape()
        super().__init__({"a": In(a_shape), "b": In(b_shape), "ce": In(1, init=1), "p": Out(p_shape)})

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5":
            prod = Signal(36)

            def extend(v, shape):            # to 18 bits: sign-extended, or zero-extended
                return [v[i] if i < shape.width else (v[shape.width - 1] if shape.signed else 0)
                        for i in range(18)]
            ports = {f"i_A{i}": bit for i, bit in enumerate(extend(self.a, self.a_shape))}
            ports.update({f"i_B{i}": bit for i, bit in enumerate(extend(self.b, self.b_shape))})
            ports.update({f"i_C{i}": 0 for i in range(18)})
            ports.update({f"o_P{i}": prod[i] for i in range(36)})
            m.submodules.dsp = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
                p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
                p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
                p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
                p_GSR="DISABLED", p_RESETMODE="SYNC",
                i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
                i_CLK0=ClockSignal(), i_CE0=self.ce, i_RST0=0,
                **ports)
            m.d.comb += self.p.eq(prod[:len(self.p)])
        else:
            a_r = Signal(self.a_shape)
            b_r = Signal(self.b_shape)
            with m.If(self.ce):
                m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), self.p.eq(a_r * b_r)]
        return m
