"""The line buffer (hw/linebuf.py) alone against a model: each bank written by its own port (both
in the same cycle, at random addresses), every read port reading a random address and bank each
cycle; each port's word two cycles after its address must be the model's, the bank it named at
that address as written up to that cycle's edge (a read in the cycle of a write to the same word
gives the old word, as the block RAM's read does)."""
import random

import pytest

from fmprune.hw.linebuf import LineBuffer
from streamtb import simulate


@pytest.mark.parametrize("ways,reads", [(1, 1), (2, 1), (2, 3), (1, 3)])
def test_line_buffer_against_model(ways, reads):
    depth = 64
    dut = LineBuffer(depth, ways=ways, reads=reads)
    bank_depth = depth // ways
    assert dut.bank_depth == bank_depth
    rng = random.Random(ways * 10 + reads)
    mem = [[None] * bank_depth for _ in range(ways)]
    checked = []

    async def bench(ctx):
        pending = []                                 # (cycle due, port, word or None)
        for cycle in range(600):
            en = 0
            writes = []
            for j in range(ways):
                if rng.random() < 0.6:
                    a = rng.randrange(bank_depth)
                    v = dict(values=[rng.randrange(-128, 128) for _ in range(8)], mask=rng.randrange(256))
                    en |= 1 << j
                    ctx.set(dut.w_addr[j], a)
                    ctx.set(dut.w_data[j], v)
                    writes.append((j, a, v))
            ctx.set(dut.w_en, en)
            for r in range(reads):
                a, b = rng.randrange(bank_depth), rng.randrange(ways)
                ctx.set(dut.r_addr[r], a)
                ctx.set(dut.r_bank[r], b)
                pending.append((cycle + 2, r, mem[b][a]))   # read before this cycle's writes
            for j, a, v in writes:
                mem[j][a] = v
            await ctx.tick()
            for due, r, want in [p for p in pending if p[0] == cycle + 1]:
                # the data two cycles after the address: sampled after its second edge
                got = ctx.get(dut.r_data[r])
                got = dict(values=[int(x) for x in got.values], mask=int(got.mask))
                if want is not None:
                    assert got == want, f"ways {ways}, port {r}, read issued at cycle {due - 2}: {got} != model {want}"
                    checked.append(r)
            pending = [p for p in pending if p[0] > cycle + 1]

    simulate(dut, bench)
    assert len(checked) > 200 * reads and set(checked) == set(range(reads))
