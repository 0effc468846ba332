"""cocotb test: layers, one after another, through a board's system (boards/system.py) over its
UART pins only. The host side is boards/host.py's session, the code that drives a real board:
each request is sent bit by bit on `rx` while the reply is sampled from `tx` in the middle of
each bit."""
import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer

from fmprune.boards.host import session
from fmprune.sw.driver import Job

PERIOD_NS = 10


async def send_byte(dut, byte, bit_ns):
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        dut.rx.value = bit
        await Timer(bit_ns, unit="ns")


async def receive(dut, n, bit_ns, timeout_ns, first_timeout_ns):
    """`n` bytes from `tx`; each must start within `timeout_ns` (the first within `first_timeout_ns`)."""
    out = bytearray()
    for _ in range(n):
        if int(dut.tx.value):
            edge = FallingEdge(dut.tx)
            timer = Timer(first_timeout_ns if not out else timeout_ns, unit="ns")
            if await First(edge, timer) is timer:
                raise TimeoutError(f"no reply byte within {timeout_ns} ns after {len(out)} of {n}")
        await Timer(bit_ns * 3 // 2, unit="ns")         # middle of data bit 0
        value = 0
        for i in range(8):
            value |= int(dut.tx.value) << i
            await Timer(bit_ns, unit="ns")
        if not int(dut.tx.value):
            raise ValueError(f"framing error: byte {len(out)} of a reply has no stop bit")
        out.append(value)
        await Timer(bit_ns // 2, unit="ns")             # to the end of the stop bit
    return bytes(out)


@cocotb.test()
async def uart_layer(dut):
    with open(os.environ["FMPRUNE_UART_JOB"]) as f:
        spec = json.load(f)
    bit_ns = spec["divisor"] * PERIOD_NS
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)
    results = []
    for one in spec["jobs"]:            # one after another on the same board, as tiles are
        job = Job(one["regs"], bytes.fromhex(one["fm_image"]), one["w_words"], one["out_bytes"], None,
                  dict(out_base=one["out_base"]))
        gen = session(job, spec["lanes"], budget=spec["budget"])
        reply_timeout_ns = 200 * bit_ns
        exchanges = 0
        link = 0                        # bytes sent and received
        try:
            request, n = next(gen)
            while True:
                rx_task = cocotb.start_soon(receive(dut, n, bit_ns, reply_timeout_ns,
                                                    reply_timeout_ns + 10 * bit_ns * len(request)))
                for b in request:
                    await send_byte(dut, b, bit_ns)
                reply = await rx_task
                exchanges += 1
                link += len(request) + len(reply)
                request, n = gen.send(reply)
        except StopIteration as stop:
            result = stop.value
        await RisingEdge(dut.clk)
        result["out"] = result["out"].hex()
        result["exchanges"] = exchanges
        result["link_bytes"] = link
        results.append(result)
    with open(spec["result"], "w") as f:
        json.dump(results, f)
