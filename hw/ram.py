"""A simple dual-port RAM whose read data is registered: `r_data` is the word at `r_addr` two
cycles before (a synchronous read, then a register). On the ECP5 the register is the DP16KD block
RAM's own output register (REGMODE OUTREG), which Yosys does not infer: the block RAM's 5.6 ns
clock-to-output time then stays off the fabric's paths (0.95 ns instead). Elsewhere (simulation,
`make verilog`, the iCE40) it is lib.memory.Memory followed by a flip-flop. The cycle behaviour is
the same either way."""
from amaranth import ClockSignal, Instance, Module, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

# depth -> data width of one DP16KD in that depth (x1, x2, x4, x9 modes)
DP16KD_WIDTHS = {16384: 1, 8192: 2, 4096: 4, 2048: 9}


def dp16kd(*, width, a_addr, a_data, a_we, a_ce=1, a_q=None, b_addr=None, b_q=None):
    """One DP16KD in the `width`-bit mode, wired as Yosys wires an inferred one (share/lattice/
    brams_map_16kd.v): the word address sits at the top of ADA / ADB, the bits below it are 0.
    Port A, when `a_ce`, writes `a_data` if `a_we` and otherwise, given `a_q`, reads into it; port
    B, given `b_q`, reads `b_addr` into it. A port that reads has its output register on (REGMODE
    OUTREG): its data arrives two cycles after the address. "NORMAL" write mode: port A's output
    holds during a write. Both ports clock on the sync domain; port B is always enabled.
    tests/test_ecp5_prims.py checks this wiring against behavioural models (sim/rtl/ecp5_models.v)."""
    low = (width - 1).bit_length() if width < 9 else 3
    ports = {}
    for port, addr in (("A", a_addr), ("B", b_addr)):
        for i in range(14):
            ports[f"i_AD{port}{i}"] = addr[i - low] if (addr is not None and low <= i < low + len(addr)) else 0
    for i in range(18):
        ports[f"i_DIA{i}"] = a_data[i] if i < len(a_data) else 0
        ports[f"i_DIB{i}"] = 0
    for port, q in (("A", a_q), ("B", b_q)):
        if q is not None:
            ports.update({f"o_DO{port}{i}": q[i] for i in range(min(width, len(q)))})
    return Instance(
        "DP16KD",
        p_DATA_WIDTH_A=width, p_DATA_WIDTH_B=width,
        p_REGMODE_A="NOREG" if a_q is None else "OUTREG", p_REGMODE_B="NOREG" if b_q is None else "OUTREG",
        p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
        p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_GSR="DISABLED",
        i_CLKA=ClockSignal(), i_CEA=a_ce, i_OCEA=1, i_WEA=a_we, i_RSTA=0, i_CSA0=0, i_CSA1=0, i_CSA2=0,
        i_CLKB=ClockSignal(), i_CEB=1, i_OCEB=1, i_WEB=0, i_RSTB=0, i_CSB0=0, i_CSB1=0, i_CSB2=0,
        **ports)


class RegisteredRAM(wiring.Component):
    """`depth` words of `shape`; one write port, one read port (registered: two cycles).

    outreg=False: always lib.memory.Memory and a fabric flip-flop, which Yosys maps to the block
    RAM mode that suits the shape (e.g. 512 x 36 for a shallow, wide memory, where this module's
    DP16KDs, at most 9 bits wide, would each hold a quarter of what they could)."""

    def __init__(self, shape, depth, *, outreg=True):
        self.shape, self.depth, self.outreg = shape, depth, outreg
        super().__init__({"w_addr": In(range(depth)), "w_data": In(shape), "w_en": In(1),
                          "r_addr": In(range(depth)), "r_data": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        # the narrowest block-RAM mode that holds `depth` words (a shallower memory leaves the
        # upper addresses unused)
        modes = [d for d in sorted(DP16KD_WIDTHS) if d >= self.depth]
        if getattr(platform, "family", None) == "ecp5" and modes and self.outreg:
            width = DP16KD_WIDTHS[modes[0]]
            w_flat = Value.cast(self.w_data)
            q_flat = Value.cast(self.r_data)
            bits = len(w_flat)
            for n, lo in enumerate(range(0, bits, width)):
                hi = min(lo + width, bits)
                m.submodules[f"bram{n}"] = dp16kd(width=width, a_addr=self.w_addr, a_data=w_flat[lo:hi],
                                                  a_we=self.w_en, b_addr=self.r_addr, b_q=q_flat[lo:hi])
        else:
            m.submodules.mem = mem = Memory(shape=self.shape, depth=self.depth, init=[])
            wp = mem.write_port()
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(self.w_addr), wp.data.eq(self.w_data), wp.en.eq(self.w_en),
                         rp.addr.eq(self.r_addr)]
            m.d.sync += self.r_data.eq(rp.data)
        return m
