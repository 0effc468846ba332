"""Host side of a board: runs a driver.Job over the serial protocol (boards/protocol.py).

`session()` is the whole exchange, free of any I/O: a generator that yields (request bytes,
reply length) and is sent each reply. `SerialTransport` drives it over a real port with pyserial;
the UART co-simulation (sim/cocotb_uart.py) drives the very same generator through the board
top's pins, so what is tested in simulation is what talks to the board."""
from __future__ import annotations

import struct
import time

from ..sw import regs
from ..sw import fmformat
from ..sw.driver import Job, Transport
from . import protocol

CHUNK = 4096                     # data bytes per WRITE_MEM / READ_MEM command


def check_fits(job: Job, lanes: int, info: dict) -> None:
    """Raise ValueError, saying what does not fit, if `job` cannot run on the board `info`."""
    if info["lanes"] != lanes:
        raise ValueError(f"the board's engine has P={info['lanes']} lanes, the job was prepared for P={lanes}: "
                         f"pass --lanes {info['lanes']}")
    need = {"feature map": (len(job.fm_image), info["fm_bytes"]),
            "weights": (len(job.w_words) * lanes, info["w_bytes"]),
            "output": (job.extra["out_base"] + job.out_bytes, info["out_bytes"])}
    over = [f"{k} {a:,} of {b:,} bytes" for k, (a, b) in need.items() if a > b]
    if over:
        raise ValueError(f"the layer does not fit the board's memories ({', '.join(over)}); "
                         f"run it tiled (sw/tiling.py) or crop it")


def memory_writes(job: Job, lanes: int) -> list[tuple[int, int, bytes]]:
    """The memory writes a session makes for `job`, as (memory, byte address, data) of at most CHUNK
    bytes: the weights whole, and of the feature map only what the engine reads (fmformat.read_ranges:
    a compressed block's tail past its last stored value is not sent, unless the gap to the next
    block's bytes is shorter than a command's own)."""
    r = job.regs
    layout = "compressed" if r["IN_LAYOUT"] else "dense"
    base = r["IN_BASE"]
    # ranges closer than a command's own bytes (header and acknowledgement) go as one write
    gap = len(protocol.write_mem(0, 0, b"")) + 1
    fm = []
    for a, b in fmformat.read_ranges(job.fm_image[base:], r["IN_C"], r["IN_H"], r["IN_W"], layout):
        if fm and base + a - fm[-1][1] <= gap:
            fm[-1] = (fm[-1][0], base + b)
        else:
            fm.append((base + a, base + b))
    weights = b"".join(int(w).to_bytes(lanes, "little") for w in job.w_words)
    writes = []
    for mem, image, ranges in ((protocol.MEM["FM"], job.fm_image, fm),
                               (protocol.MEM["WEIGHTS"], weights, [(0, len(weights))])):
        for start, stop in ranges:
            for at in range(start, stop, CHUNK):
                writes.append((mem, at, image[at:min(at + CHUNK, stop)]))
    return writes


def link_bytes(job: Job, lanes: int) -> dict:
    """Bytes a session for `job` moves over the link, by part (requests and replies; the status
    polls while the engine runs not counted), and its request / reply exchanges: what `session`
    sends, computed without a board."""
    ack = 1
    writes = memory_writes(job, lanes)
    fm = sum(len(protocol.write_mem(m, a, d)) + ack for m, a, d in writes if m == protocol.MEM["FM"])
    w = sum(len(protocol.write_mem(m, a, d)) + ack for m, a, d in writes if m == protocol.MEM["WEIGHTS"])
    reg = (len(job.regs) + 1) * (len(protocol.write_reg(0, 0)) + ack)
    counters = len(regs.COUNTERS) * (len(protocol.read_reg(0)) + 4)
    out_reads = range(0, job.out_bytes, CHUNK)
    out = sum(len(protocol.read_mem(0, 0, 0)) + min(CHUNK, job.out_bytes - at) for at in out_reads)
    info = len(protocol.info()) + protocol.INFO_BYTES
    # request / reply round trips: each costs the link's latency besides its bytes (a USB serial
    # adapter returns a short reply only when its latency timer expires)
    exchanges = 1 + len(writes) + len(job.regs) + 1 + len(regs.COUNTERS) + len(out_reads)
    return dict(fm=fm, weights=w, registers=reg + counters + info, out=out,
                total=fm + w + reg + counters + info + out, exchanges=exchanges)


def _ack(reply: bytes, what: str):
    if reply != bytes([protocol.ACK]):
        raise RuntimeError(f"the board did not acknowledge {what} (got {reply.hex() or 'nothing'}): "
                           f"wrong bitstream, baud rate or a noisy link")


def session(job: Job, lanes: int, *, budget: int, poll_every: int = 1):
    """The exchange for one job. Yields (request, reply length); returns the result dict of
    driver.Transport.execute. The run is abandoned (timeout) once the engine's CYCLES counter
    passes `budget` cycles while it is still busy."""
    info = protocol.parse_info((yield protocol.info(), protocol.INFO_BYTES))
    check_fits(job, lanes, info)
    for mem, at, data in memory_writes(job, lanes):
        _ack((yield protocol.write_mem(mem, at, data), 1), "a memory write")
    for name, value in job.regs.items():
        _ack((yield protocol.write_reg(regs.ADDR[name], value), 1), f"register {name}")
    _ack((yield protocol.write_reg(regs.ADDR["CTRL"], 1), 1), "the start")

    def read(name):
        return struct.unpack("<I", (yield protocol.read_reg(regs.ADDR[name]), 4))[0]

    timeout = False
    polls = 0
    while True:
        status = yield from read("STATUS")
        if not status & 1:
            break
        polls += 1
        if polls % poll_every == 0 and (yield from read("CYCLES")) > budget:
            timeout = True
            break
    counters = {}
    for name in regs.COUNTERS:
        counters[name] = yield from read(name)
    out = b""
    if not timeout:
        base = job.extra["out_base"]
        for at in range(base, base + job.out_bytes, CHUNK):
            n = min(CHUNK, base + job.out_bytes - at)
            out += yield protocol.read_mem(protocol.MEM["OUT"], at, n), n
        out = bytes(base) + out
    return dict(out=out, counters=counters, error=(status >> 8) & 0xFF, timeout=timeout, polls=polls, info=info)


def drive(gen, exchange):
    """Run a session generator with a blocking `exchange(request, n) -> reply`."""
    try:
        request = next(gen)
        while True:
            request = gen.send(exchange(*request))
    except StopIteration as stop:
        return stop.value


class SerialTransport(Transport):
    """A board on a serial port (pyserial), as a driver.Transport."""

    def __init__(self, port: str, lanes: int, *, baud: int = 1_000_000, budget: int = 2_000_000_000,
                 reply_timeout_s: float = 2.0):
        import serial
        try:
            self.link = serial.Serial(port, baud, timeout=reply_timeout_s)
        except serial.SerialException as e:
            raise RuntimeError(f"cannot open serial port {port}: {e}") from None
        self.port, self.lanes, self.budget = port, lanes, budget
        # every exchange waits for its reply, and an FTDI adapter passes a short reply on only
        # when its latency timer runs out (16 ms by default, 1 ms in low-latency mode): ask for
        # low latency where the OS has it (Linux); elsewhere the run is slower, not wrong
        try:
            self.link.set_low_latency_mode(True)
            self.low_latency = True
        except (AttributeError, NotImplementedError, ValueError, OSError):
            self.low_latency = False
        self.link.reset_input_buffer()

    def exchange(self, request: bytes, n: int) -> bytes:
        self.link.write(request)
        reply = self.link.read(n)
        if len(reply) != n:
            raise RuntimeError(f"{self.port}: the board sent {len(reply)} of {n} bytes within "
                               f"{self.link.timeout} s: is the fmprune bitstream loaded, and the baud rate "
                               f"{self.link.baudrate}?")
        return reply

    def info(self) -> dict:
        return protocol.parse_info(self.exchange(protocol.info(), protocol.INFO_BYTES))

    def execute(self, job: Job) -> dict:
        t = time.perf_counter()
        result = drive(session(job, self.lanes, budget=self.budget, poll_every=16), self.exchange)
        result["wall_s"] = time.perf_counter() - t
        return result
