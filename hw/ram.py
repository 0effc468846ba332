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


def pdp36(*, w_addr, w_data, w_en, r_addr, r_q):
    """One DP16KD in the 512 x 36 pseudo-dual-port mode, wired as Yosys wires an inferred one
    (share/lattice/brams_map_16kd.v, $__PDPW16KD_): both ports 36 bits wide, the write on port A
    (clock enable: the write; ADA3..0 its four 9-bit byte enables, all set), the read on port B;
    the word address at ADx13..5, the data's bits 0-17 on port A's pins and 18-35 on port B's,
    for the write data and the read data alike. The read data is registered (REGMODE OUTREG, on
    both ports' halves): it arrives two cycles after the address."""
    ports = {}
    for port, addr in (("A", w_addr), ("B", r_addr)):
        for i in range(14):
            ports[f"i_AD{port}{i}"] = addr[i - 5] if 5 <= i < 5 + len(addr) else (1 if port == "A" and i < 4 else 0)
    for i in range(18):
        ports[f"i_DIA{i}"] = w_data[i] if i < len(w_data) else 0
        ports[f"i_DIB{i}"] = w_data[18 + i] if 18 + i < len(w_data) else 0
        if i < len(r_q):
            ports[f"o_DOA{i}"] = r_q[i]
        if 18 + i < len(r_q):
            ports[f"o_DOB{i}"] = r_q[18 + i]
    return Instance(
        "DP16KD",
        p_DATA_WIDTH_A=36, p_DATA_WIDTH_B=36, p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
        p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
        p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_GSR="DISABLED",
        i_CLKA=ClockSignal(), i_CEA=w_en, i_OCEA=1, i_WEA=1, i_RSTA=0, i_CSA0=0, i_CSA1=0, i_CSA2=0,
        i_CLKB=ClockSignal(), i_CEB=1, i_OCEB=1, i_WEB=0, i_RSTB=0, i_CSB0=0, i_CSB1=0, i_CSB2=0,
        **ports)


class RegisteredRAM(wiring.Component):
    """`depth` words of `shape`; one write port, one read port (registered: two cycles).

    On the ECP5 a memory of at most 512 words takes DP16KDs in the 512 x 36 pseudo-dual-port mode
    (`pdp36`), a deeper one the narrowest true-dual-port mode that holds it (`dp16kd`), each with
    its output register. outreg=False: always lib.memory.Memory and a fabric flip-flop, which Yosys
    maps to the block RAM mode that suits the shape, without the output register."""

    def __init__(self, shape, depth, *, outreg=True):
        self.shape, self.depth, self.outreg = shape, depth, outreg
        super().__init__({"w_addr": In(range(depth)), "w_data": In(shape), "w_en": In(1),
                          "r_addr": In(range(depth)), "r_data": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        # the narrowest block-RAM mode that holds `depth` words (a shallower memory leaves the
        # upper addresses unused)
        modes = [d for d in sorted(DP16KD_WIDTHS) if d >= self.depth]
        ecp5 = getattr(platform, "family", None) == "ecp5" and self.outreg
        if ecp5 and self.depth <= 512:
            w_flat = Value.cast(self.w_data)
            q_flat = Value.cast(self.r_data)
            for n, lo in enumerate(range(0, len(w_flat), 36)):
                hi = min(lo + 36, len(w_flat))
                m.submodules[f"bram{n}"] = pdp36(w_addr=self.w_addr, w_data=w_flat[lo:hi], w_en=self.w_en,
                                                 r_addr=self.r_addr, r_q=q_flat[lo:hi])
        elif ecp5 and modes:
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
