"""The hand-instantiated ECP5 primitives against their portable twins.

On the ECP5, hw/ram.RegisteredRAM, boards/memory.ECP5RAM and hw/dsp.PipelinedMul instantiate
DP16KD / MULT18X18D, which Yosys cannot simulate (it ships black boxes) and which no simulation of
the engine or the board exercises (they run the portable twins). Here each is elaborated both ways
side by side in one design, driven by the same pseudo-random stimulus generated inside the design,
and run on Icarus with behavioural models of the primitives (sim/rtl/ecp5_models.v): every output
must equal its twin's on every cycle. This checks the wiring (address bit placement, data slices,
byte lanes, latency) under the models' reading of Lattice's documentation."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from amaranth import Cat, Elaboratable, Module, Signal, signed, unsigned
from amaranth.back import verilog
from amaranth.lib.memory import Memory

from fmprune.boards.memory import ECP5RAM
from fmprune.hw.dsp import PipelinedMul
from fmprune.hw.ram import RegisteredRAM

MODELS = Path(__file__).resolve().parent.parent / "sim" / "rtl" / "ecp5_models.v"
CYCLES = 6000


class _ECP5:
    family = "ecp5"


class _As(Elaboratable):
    """Elaborate `inner` as for `platform` (None: the portable twin)."""
    def __init__(self, inner, platform):
        self.inner, self.platform = inner, platform
        inner._MustUse__used = True                  # elaborated here, not by Fragment.get

    def elaborate(self, platform):
        return self.inner.elaborate(self.platform)


class _PortableECP5RAM(Elaboratable):
    """ECP5RAM's portable twin, as boards/memory.BoardMemory builds it off the ECP5."""
    def __init__(self, ram):
        self.ram = ram
        ram._MustUse__used = True                    # only its ports are used

    def elaborate(self, platform):
        m = Module()
        ram = self.ram
        m.submodules.mem = mem = Memory(shape=len(ram.q), depth=ram.depth, init=[])
        wp = mem.write_port(granularity=8)
        rp = mem.read_port()
        m.d.comb += [wp.addr.eq(ram.addr), rp.addr.eq(ram.addr), wp.data.eq(ram.w_data), wp.en.eq(ram.w_en),
                     rp.en.eq(~wp.en.any())]
        m.d.sync += ram.q.eq(rp.data)
        return m


class Harness(Elaboratable):
    """Pairs of (ECP5, portable) units on shared stimulus; `bad` has a bit per pair, set for good
    at the first cycle their outputs differ; `nonzero` counts cycles with a non-zero output."""
    def __init__(self):
        self.pairs = []
        self.bad = Signal(16)
        self.nonzero = Signal(32)
        self.first_bad = Signal(32)
        self.cycle = Signal(32)

    def elaborate(self, platform):
        m = Module()
        x = Signal(64, init=0x9E3779B97F4A7C15)          # xorshift64
        x1, x2, x3 = Signal(64), Signal(64), Signal(64)
        m.d.comb += [x1.eq(x ^ (x << 13)), x2.eq(x1 ^ (x1 >> 7)), x3.eq(x2 ^ (x2 << 17))]
        m.d.sync += [x.eq(x3), self.cycle.eq(self.cycle + 1)]

        def spread(bits, width):
            """64 addresses from 6 random bits: the low 3 bits on their own (so that addresses
            differing only there exist, and a misplaced word address aliases them), the other 3
            repeated over the rest (so that every address bit toggles)."""
            return Cat(bits[0:3], *(bits[3 + i % 3] for i in range(width - 3)))

        outs = []
        for name, depth, width in (("rram2048", 2048, 72), ("rram4096", 4096, 20), ("rram1024", 1024, 70),
                                   ("rram128", 128, 70), ("rram512", 512, 36)):
            a, b = RegisteredRAM(width, depth), RegisteredRAM(width, depth)
            m.submodules[f"{name}_ecp5"] = _As(a, _ECP5())
            m.submodules[f"{name}_ref"] = _As(b, None)
            abits = (depth - 1).bit_length()
            for r in (a, b):
                m.d.comb += [r.w_addr.eq(spread(x[0:6], abits)), r.r_addr.eq(spread(x[6:12], abits)),
                             r.w_data.eq(Cat(x, x[3:40])[:width]), r.w_en.eq(x[12] & x[13])]
            outs.append((name, a.r_data, b.r_data))
        for name, depth, nbytes in (("eram4096", 4096, 2), ("eram16384", 16384, 4)):
            a, b = ECP5RAM(depth, nbytes), ECP5RAM(depth, nbytes)
            m.submodules[f"{name}_ecp5"] = _As(a, _ECP5())
            m.submodules[f"{name}_ref"] = _PortableECP5RAM(b)
            abits = (depth - 1).bit_length()
            for r in (a, b):
                we = x[52:52 + nbytes] & x[56:56 + nbytes]
                m.d.comb += [r.addr.eq(spread(x[14:20], abits)), r.w_data.eq(x[20:20 + 8 * nbytes]),
                             r.w_en.eq(we), r.ce.eq(ECP5RAM.clock_enables(we))]
            outs.append((name, a.q, b.q))
        a, b = PipelinedMul(), PipelinedMul()
        m.submodules.mul_ecp5 = _As(a, _ECP5())
        m.submodules.mul_ref = _As(b, None)
        for u in (a, b):
            m.d.comb += [u.a.eq(x[32:40]), u.b.eq(x[40:48])]
        outs.append(("mul", a.p, b.p))
        # the requantiser's 16 x 16 partial products, with the clock enable toggling
        for name, sa, sb in (("mul_uu", unsigned(16), unsigned(16)), ("mul_us", unsigned(16), signed(16)),
                             ("mul_ss", signed(16), signed(16))):
            a, b = PipelinedMul(sa, sb), PipelinedMul(sa, sb)
            m.submodules[f"{name}_ecp5"] = _As(a, _ECP5())
            m.submodules[f"{name}_ref"] = _As(b, None)
            for u in (a, b):
                m.d.comb += [u.a.eq(x[16:32]), u.b.eq(x[44:60]), u.ce.eq(x[60] | x[61])]
            outs.append((name, a.p, b.p))

        self.names = [n for n, _, _ in outs]
        assert len(outs) <= len(self.bad), "one `bad` bit a pair: widen it (and the testbench's wire)"
        warm = self.cycle > 4
        for i, (_, got, ref) in enumerate(outs):
            with m.If(warm & (got != ref) & ~self.bad[i]):
                m.d.sync += self.bad[i].eq(1)
                with m.If(self.bad == 0):
                    m.d.sync += self.first_bad.eq(self.cycle)
        with m.If(warm & (outs[0][2] != 0)):
            m.d.sync += self.nonzero.eq(self.nonzero + 1)
        return m


TESTBENCH = """
module tb;
  reg clk = 0, rst = 1;
  wire [15:0] bad; wire [31:0] nonzero, first_bad;
  top dut(.clk(clk), .rst(rst), .bad(bad), .nonzero(nonzero), .first_bad(first_bad));
  always #5 clk = ~clk;
  initial begin
    #20 rst = 0;
    repeat (%d) @(posedge clk);
    $display("RESULT bad=%%0d nonzero=%%0d first_bad=%%0d", bad, nonzero, first_bad);
    $finish;
  end
endmodule
"""


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not installed")
def test_ecp5_primitives_match_their_portable_twins(tmp_path):
    h = Harness()
    src = verilog.convert(h, name="top", ports=[h.bad, h.nonzero, h.first_bad])
    (tmp_path / "top.v").write_text(src)
    (tmp_path / "tb.v").write_text(TESTBENCH % CYCLES)
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "sim"), str(tmp_path / "tb.v"),
                    str(tmp_path / "top.v"), str(MODELS)], check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", str(tmp_path / "sim")], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    got = re.search(r"RESULT bad=(\d+) nonzero=(\d+) first_bad=(\d+)", out)
    assert got, out
    bad, nonzero, first_bad = map(int, got.groups())
    failed = [n for i, n in enumerate(h.names) if bad >> i & 1]
    assert not failed, (f"ECP5 primitive wiring differs from the portable twin in {failed}, "
                        f"first at cycle {first_bad} (of {CYCLES})")
    assert nonzero > CYCLES // 4, f"the stimulus read back mostly zeros ({nonzero} non-zero cycles)"
