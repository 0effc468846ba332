"""Run one layer through the engine in Amaranth's simulator (async testbench): load memories,
program the registers, start, wait with a cycle budget, read back output and counters.

With FMPRUNE_FINGERPRINT=FILE set, every job's counters, memory counts, status and a hash of its
output are appended to FILE as a JSON line named by the pytest test: the record an engine
refactor keeps identical (DEVELOPERS.md, "Changing the engine")."""
import hashlib
import json
import os

import numpy as np
from amaranth.sim import Simulator

from fmprune.sw import regs
from fmprune.hw.simtop import SimTop


async def csr_write(ctx, csr, name, value):
    ctx.set(csr.addr, regs.ADDR[name])
    ctx.set(csr.w_data, value)
    ctx.set(csr.w_stb, 1)
    await ctx.tick()
    ctx.set(csr.w_stb, 0)


def csr_read(ctx, csr, name):
    ctx.set(csr.addr, regs.ADDR[name])
    return ctx.get(csr.r_data)


def run_job(job, lanes, **options):
    """One job: load its memories, program the registers, start, wait; the result dict."""
    return run_jobs([job], lanes, **options)[0]


def _merge(images):
    """Memory images laid over each other (each job's image is zero below its own base)."""
    merged = [0] * max(len(im) for im in images)
    for im in images:
        for i, v in enumerate(im):
            if v:
                merged[i] = v
    return merged


def run_jobs(jobs, lanes, *, budget=200_000, stall_percent=0, out_stall_percent=None, seed=1, out_pad=64,
             engine_args=None, vcd=None):
    """Jobs one after another on the same engine, as a board runs tile after tile: their memory
    images share the memories (each at its own bases, driver.prepare(in_base=..., ...)), and the
    output memory is cleared before each start. One result dict per job; `out` is the whole
    output memory after that job."""
    n_out = max(j.extra.get("out_base", 0) + j.out_bytes for j in jobs) + out_pad
    top = SimTop(lanes, _merge([list(j.fm_image) for j in jobs]), _merge([j.w_words for j in jobs]), n_out,
                 stall_percent=stall_percent, out_stall_percent=out_stall_percent, seed=seed, **(engine_args or {}))
    results = []
    mem = top.om.mem.data
    Bo = top.out_beat_bytes
    n_words = -(-n_out // Bo)

    async def bench(ctx):
        for job in jobs:
            result = {}
            for i in range(n_words):
                ctx.set(mem[i], 0)
            result["id"] = csr_read(ctx, top.csr, "ID")
            for name, value in job.regs.items():
                await csr_write(ctx, top.csr, name, value)
            await csr_write(ctx, top.csr, "CTRL", 1)
            result["status_at_start"] = csr_read(ctx, top.csr, "STATUS")     # the cycle after the write
            await ctx.tick()
            for cycle in range(budget):
                if not ctx.get(top.busy):
                    break
                await ctx.tick()
            else:
                result["timeout"] = True
            status = csr_read(ctx, top.csr, "STATUS")
            result["status"] = status
            result["error"] = status >> 8
            result["counters"] = {n: csr_read(ctx, top.csr, n) for n in regs.COUNTERS}
            result["fm_beat_bytes"] = csr_read(ctx, top.csr, "FM_BEAT_BYTES")
            result["out_beat_bytes"] = csr_read(ctx, top.csr, "OUT_BEAT_BYTES")
            result["memory"] = dict(fm_reads=ctx.get(top.fm_reads), fm_port_bytes=ctx.get(top.fm_reads) * top.fm_bytes,
                                    w_reads=ctx.get(top.w_reads),
                                    out_writes=ctx.get(top.out_writes), out_bytes=ctx.get(top.out_bytes),
                                    oob=ctx.get(top.oob),
                                    refused=ctx.get(top.refused))
            result["out"] = b"".join(ctx.get(mem[i]).to_bytes(Bo, "little") for i in range(n_words))[:n_out]
            results.append(result)
            _fingerprint(result)
            if result.get("timeout"):
                break

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results


def _fingerprint(result):
    path = os.environ.get("FMPRUNE_FINGERPRINT")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
    row = {k: v for k, v in result.items() if k != "out"}
    row.update(test=test, out_sha256=hashlib.sha256(result["out"]).hexdigest())
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def check_output(name, got, want):
    diff = np.argwhere(got != want)
    assert diff.size == 0, (f"{name}: {len(diff)} mismatches; first at (k, y, x)={tuple(diff[0])}: "
                            f"RTL {got[tuple(diff[0])]} != expected {want[tuple(diff[0])]}")
