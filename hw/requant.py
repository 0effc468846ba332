"""The requantiser: int32 accumulator -> int8 output, exactly sw/quant.py's
MultiplyByQuantizedMultiplier (SaturatingRoundingDoublingHighMul + RoundingDivideByPOT) and the
fused activation clamp, after the bias. Thirteen pipeline stages (no stage has more than one 16 x 16
multiplier, one wide adder, one wide compare or one barrel shifter), one result per cycle, stalls on back-pressure."""
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..sw import quant
from .dsp import PipelinedMul


class RequantIn(data.StructLayout):
    def __init__(self):
        super().__init__({
            "acc": signed(32),
            "bias": signed(32),         # added to acc, wrapping (as the golden model)
            "multiplier": signed(32),   # Q31, 0 or [2**30, 2**31)
            "shift": signed(6),         # SHIFT_MIN..SHIFT_MAX, positive = left
            "zero": 1,                  # 1: the result is 0 whatever the other fields (a channel past K;
                                        # the parameters then come unchecked from block RAM)
        })


class Requantizer(wiring.Component):
    """`i`: accumulator with its channel's multiplier and shift. `o`: the int8 result.
    `lo`/`hi`: the activation clamp (run-time configuration, held stable during a layer)."""
    i: In(stream.Signature(RequantIn()))
    o: Out(stream.Signature(signed(8)))
    lo: In(signed(8))
    hi: In(signed(8))

    LATENCY = 13

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        # stage 0: the input, registered (it may come straight from block RAM)
        s0_valid = Signal()
        s0 = Signal(RequantIn())
        # stage 1a: the bias (wraps to 32 bits, as quant.mbqm); 1b: the left shift
        s1a_valid = Signal()
        s1a_sum = Signal(signed(32))
        s1a_m = Signal(signed(32))
        s1a_left = Signal(unsigned(5))
        s1a_right = Signal(unsigned(5))
        shift = s0.shift
        s1_valid = Signal()
        s1_x = Signal(signed(32))
        s1_m = Signal(signed(32))
        s1_right = Signal(unsigned(5))
        # stages 2i and 2a: four 16 x 16 partial products (x * m = ll + (lh + hl) << 16 + hh << 32),
        # each from one DSP multiplier whose operand (2i) and product (2a) registers are its own;
        # 2m: the middle sum
        halves = dict(ll=(unsigned(16), unsigned(16)), lh=(unsigned(16), signed(16)),
                      hl=(unsigned(16), signed(16)), hh=(signed(16), signed(16)))
        mul = {n: PipelinedMul(*shapes) for n, shapes in halves.items()}
        for n, u in mul.items():
            m.submodules[f"mul_{n}"] = u
            m.d.comb += u.ce.eq(advance)
        m.d.comb += [mul["ll"].a.eq(s1_x[:16]), mul["ll"].b.eq(s1_m[:16]),
                     mul["lh"].a.eq(s1_x[:16]), mul["lh"].b.eq(s1_m[16:]),
                     mul["hl"].a.eq(s1_m[:16]), mul["hl"].b.eq(s1_x[16:]),
                     mul["hh"].a.eq(s1_x[16:]), mul["hh"].b.eq(s1_m[16:])]
        s2i_valid = Signal()
        s2i_ovf = Signal()
        s2i_right = Signal(unsigned(5))
        s2a_valid = Signal()
        s2a_ll = mul["ll"].p
        s2a_lh = mul["lh"].p
        s2a_hl = mul["hl"].p
        s2a_hh = mul["hh"].p
        s2a_ovf = Signal()
        s2a_right = Signal(unsigned(5))
        s2m_valid = Signal()
        s2m_outer = Signal(signed(64))      # ll + hh << 32: no carry between them
        s2m_mid = Signal(signed(34))
        s2m_ovf = Signal()
        s2m_right = Signal(unsigned(5))
        # stage 2b: the 64-bit product and the INT32_MIN * INT32_MIN case
        s2_valid = Signal()
        s2_ab = Signal(signed(64))
        s2_ovf = Signal()
        s2_right = Signal(unsigned(5))
        # stage 3a: the rounding nudge; 3b: SaturatingRoundingDoublingHighMul (divide toward zero)
        s3a_valid = Signal()
        s3a_nudged = Signal(signed(65))
        s3a_ovf = Signal()
        s3a_right = Signal(unsigned(5))
        s3_valid = Signal()
        s3_q = Signal(signed(32))
        s3_right = Signal(unsigned(5))
        s3_mask = Signal(unsigned(31))      # (1 << right) - 1, from the right shift alone: made a stage early
        trunc = (s3a_nudged + Mux(s3a_nudged < 0, (1 << 31) - 1, 0)) >> 31
        # stage 4a: RoundingDivideByPOT's shift and remainder; 4b: its rounding decision,
        # remainder > (mask >> 1) + (q < 0), as two compares side by side (no add in front);
        # 5: their sum; then the clamp
        s3_half = Signal(unsigned(31))      # mask >> 1, made with the mask
        s4a_valid = Signal()
        s4a_shifted = Signal(signed(32))
        s4a_rem = Signal(unsigned(31))
        s4a_neg = Signal()
        s4a_half = Signal(unsigned(31))
        s4a_half1 = Signal(unsigned(32))    # half + 1
        s4_valid = Signal()
        s4_shifted = Signal(signed(32))
        s4_up = Signal()
        s5_valid = Signal()
        divided = Signal(signed(33))
        clamped = Mux(divided < self.lo, self.lo, Mux(divided > self.hi, self.hi, divided))

        with m.If(advance):
            m.d.sync += [
                s0_valid.eq(self.i.valid),
                s0.eq(self.i.payload),
                s1a_valid.eq(s0_valid),
                s1a_sum.eq(Mux(s0.zero, 0, (s0.acc + s0.bias)[:32].as_signed())),
                s1a_m.eq(Mux(s0.zero, 0, s0.multiplier)),
                s1a_left.eq(Mux(shift > 0, shift, 0)[:5]),
                s1a_right.eq(Mux(shift < 0, -shift, 0)[:5]),
                s1_valid.eq(s1a_valid),
                s1_x.eq((s1a_sum << s1a_left)[:32].as_signed()),
                s1_m.eq(s1a_m),
                s1_right.eq(s1a_right),
                s2i_valid.eq(s1_valid),
                s2i_ovf.eq((s1_x == quant.INT32_MIN) & (s1_m == quant.INT32_MIN)),
                s2i_right.eq(s1_right),
                s2a_valid.eq(s2i_valid),
                s2a_ovf.eq(s2i_ovf),
                s2a_right.eq(s2i_right),
                s2m_valid.eq(s2a_valid),
                s2m_outer.eq(Cat(s2a_ll, s2a_hh).as_signed()),
                s2m_mid.eq(s2a_lh + s2a_hl),
                s2m_ovf.eq(s2a_ovf),
                s2m_right.eq(s2a_right),
                s2_valid.eq(s2m_valid),
                s2_ab.eq(s2m_outer + (s2m_mid << 16)),
                s2_ovf.eq(s2m_ovf),
                s2_right.eq(s2m_right),
                s3a_valid.eq(s2_valid),
                s3a_nudged.eq(s2_ab + Mux(s2_ab >= 0, 1 << 30, 1 - (1 << 30))),
                s3a_ovf.eq(s2_ovf),
                s3a_right.eq(s2_right),
                s3_valid.eq(s3a_valid),
                s3_q.eq(Mux(s3a_ovf, quant.INT32_MAX, trunc[:32].as_signed())),
                s3_right.eq(s3a_right),
                s3_mask.eq(((Const(1, unsigned(32)) << s3a_right) - 1)[:31]),
                s3_half.eq(((Const(1, unsigned(32)) << s3a_right) - 1)[1:32]),
                s4a_valid.eq(s3_valid),
                s4a_shifted.eq(s3_q >> s3_right),
                s4a_rem.eq(s3_q.as_unsigned()[:31] & s3_mask),
                s4a_neg.eq(s3_q < 0),
                s4a_half.eq(s3_half),
                s4a_half1.eq(s3_half + 1),
                s4_valid.eq(s4a_valid),
                s4_shifted.eq(s4a_shifted),
                s4_up.eq(Mux(s4a_neg, s4a_rem > s4a_half1, s4a_rem > s4a_half)),
                s5_valid.eq(s4_valid),
                divided.eq(s4_shifted + s4_up),
                self.o.valid.eq(s5_valid),
                self.o.payload.eq(clamped[:8]),
            ]
        return m
