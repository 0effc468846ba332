"""cocotb test: run one layer on sim_top. Python loads nothing per cycle: memories come from
plusarg files, the clock is cocotb's C clock, and the wait is one trigger with a cycle budget."""
import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from fmprune.sw import regs

PERIOD_NS = 10


async def csr_write(dut, addr, value):
    dut.csr_addr.value = addr
    dut.csr_w_data.value = value & 0xFFFF_FFFF
    dut.csr_w_stb.value = 1
    await RisingEdge(dut.clk)
    dut.csr_w_stb.value = 0


async def csr_read(dut, addr):
    dut.csr_addr.value = addr
    await Timer(1, unit="ns")
    return int(dut.csr_r_data.value)


@cocotb.test()
async def run_layer(dut):
    with open(os.environ["FMPRUNE_JOB"]) as f:
        job = json.load(f)
    if not int(dut.INTERNAL_CLOCK.value):
        cocotb.start_soon(Clock(dut.clk_in, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    dut.csr_w_stb.value = 0
    dut.dump.value = 0
    dut.stall_threshold.value = job["stall_threshold"]
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    engine_id = await csr_read(dut, regs.ADDR["ID"])
    for name, value in job["regs"].items():
        await csr_write(dut, regs.ADDR[name], value)
    await csr_write(dut, regs.ADDR["CTRL"], 1)
    t0 = get_sim_time("ns")
    status_at_start = await csr_read(dut, regs.ADDR["STATUS"])       # 1 ns after the write's edge
    if int(dut.busy.value):
        await First(FallingEdge(dut.busy), Timer(job["budget"] * PERIOD_NS, unit="ns"))
    elapsed = int((get_sim_time("ns") - t0) // PERIOD_NS)
    timeout = bool(int(dut.busy.value))
    await RisingEdge(dut.clk)
    counters = {n: await csr_read(dut, regs.ADDR[n]) for n in regs.COUNTERS}
    status = await csr_read(dut, regs.ADDR["STATUS"])
    dut.dump.value = 1
    await ClockCycles(dut.clk, 2)
    result = dict(id=engine_id, status_at_start=status_at_start, timeout=timeout, status=status, error=status >> 8, counters=counters, sim_cycles=elapsed,
                  memory=dict(fm_reads=int(dut.fm_reads.value), w_reads=int(dut.w_reads.value),
                              out_writes=int(dut.out_writes.value), out_bytes=int(dut.out_bytes.value),
                              oob=int(dut.oob.value)))
    with open(job["result"], "w") as f:
        json.dump(result, f)
