"""The register block (hw/regfile.py) alone, cycle by cycle against a deliberately naive model of
the register map (sw/regs.py): random bus writes (some while busy, which must not land), STARTs,
ends with and without an error code, and random counter increments; every register read back
every cycle."""
import random

import pytest

from fmprune.hw.regfile import Increments, Registers, steps
from fmprune.sw import regs
from streamtb import simulate


class Model:
    def __init__(self, lanes, wbuf_words, fm_bytes, out_bytes):
        self.lanes, self.wbuf_words, self.fm_bytes, self.out_bytes = lanes, wbuf_words, fm_bytes, out_bytes
        self.r = {r.name: 0 for r in regs.REGISTERS}
        self.busy = self.done = 0
        self.err = 0
        self.start = 0

    def read(self, name):
        if name == "ID":
            return regs.engine_id(self.lanes)
        if name == "STATUS":
            return self.busy | self.done << 1 | self.err << 8
        if name == "CTRL":
            return 0
        if name == "WBUF_WORDS":
            return self.wbuf_words
        if name == "FM_BEAT_BYTES":
            return self.fm_bytes
        if name == "OUT_BEAT_BYTES":
            return self.out_bytes
        return self.r[name]

    def cycle(self, write, end, end_error, inc):
        """One clock edge: the bus write (addr, data) or None, the end strobe, the increments."""
        busy_before = self.busy
        self.start = 0
        if write and not busy_before:
            name, data = write
            reg = regs.REGISTERS[regs.ADDR[name]]
            if reg.access == "rw":
                self.r[name] = data & ((1 << reg.width) - 1)
            elif name == "CTRL" and data & 1:
                self.start, self.busy, self.done, self.err = 1, 1, 0, 0
                for c in regs.COUNTERS:
                    self.r[c] = 0
        if end:
            self.err, self.busy, self.done = end_error, 0, 1
        if busy_before:
            self.r["CYCLES"] += 1
        for name, v in inc.items():
            self.r[name] += v * steps(self.lanes).get(name, 1) if v else 0


@pytest.mark.parametrize("lanes,fm_bytes,out_bytes", [(1, 1, 2), (16, 8, 16)])
def test_registers_against_model(lanes, fm_bytes, out_bytes):
    dut = Registers(lanes, 1000 + lanes, fm_bytes, out_bytes)
    model = Model(lanes, 1000 + lanes, fm_bytes, out_bytes)
    rng = random.Random(lanes)
    fields = Increments(lanes)
    names = [r.name for r in regs.REGISTERS]

    async def bench(ctx):
        for cycle in range(3000):
            write = None
            if rng.random() < 0.3:
                name = "CTRL" if rng.random() < 0.1 else rng.choice(names)
                write = (name, rng.randrange(1 << 32))
            end = model.busy and rng.random() < 0.02
            end_error = rng.randrange(8) if end and rng.random() < 0.5 else 0
            inc = {}
            for name in fields.members:
                width = len(dut.inc[name])
                inc[name] = rng.randrange(1 << width) if model.busy and rng.random() < 0.3 else 0
                if name == "MACS":
                    inc[name] = min(inc[name], lanes)
                if name in ("FM_PORT_BYTES", "OUT_BYTES"):
                    inc[name] = min(inc[name], 16)
                if name == "FM_VALUE_BYTES":
                    inc[name] = min(inc[name], 8)
                ctx.set(dut.inc[name], inc[name])
            ctx.set(dut.csr.w_stb, write is not None)
            ctx.set(dut.csr.addr, regs.ADDR[write[0]] if write else 0)
            ctx.set(dut.csr.w_data, write[1] if write else 0)
            ctx.set(dut.end, end)
            ctx.set(dut.end_error, end_error)
            await ctx.tick()
            model.cycle(write, end, end_error, inc)
            ctx.set(dut.csr.w_stb, 0)
            ctx.set(dut.end, 0)
            assert ctx.get(dut.start) == model.start, f"cycle {cycle}: start {ctx.get(dut.start)}"
            assert ctx.get(dut.busy) == model.busy, f"cycle {cycle}: busy {ctx.get(dut.busy)}"
            for name in names:
                ctx.set(dut.csr.addr, regs.ADDR[name])
                got, want = ctx.get(dut.csr.r_data), model.read(name)
                assert got == want, f"cycle {cycle}: {name} reads {got:#x}, model {want:#x}"
            for name in regs.DESCRIPTOR:
                assert ctx.get(dut.desc[name]) == model.r[name], f"cycle {cycle}: desc.{name}"

    simulate(dut, bench)
