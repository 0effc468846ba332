"""The serial protocol between the host and a board's UART bridge: the one definition used by the
gateware (boards/bridge.py), the host transport (boards/host.py), the UART co-simulation and
docs/boards.md (`python -m fmprune.boards.protocol` prints the table).

Every command is one byte, then its fields, little-endian. Every command gets a reply, so the
host always knows where the board is. A command that stops arriving half way is abandoned after
`IDLE_TIMEOUT_S` of silence, so a host that died mid-command cannot wedge the board."""
from __future__ import annotations

import struct
from dataclasses import dataclass

ACK = 0xA5
INFO_MAGIC = 0xF9B0B0A7
IDLE_TIMEOUT_S = 0.05


@dataclass(frozen=True)
class Command:
    code: int
    name: str
    fields: tuple            # (name, bytes) after the command byte
    reply: str
    doc: str


COMMANDS = [
    Command(0x01, "WRITE_REG", (("addr", 1), ("value", 4)), "ACK", "write engine register `addr` (sw/regs.py)"),
    Command(0x02, "READ_REG", (("addr", 1),), "value (4 bytes)", "read engine register `addr`"),
    Command(0x03, "WRITE_MEM", (("mem", 1), ("addr", 4), ("count", 4)), "ACK after the data",
            "then `count` data bytes, stored from byte `addr` of memory `mem`; waits while the engine is busy"),
    Command(0x04, "READ_MEM", (("mem", 1), ("addr", 4), ("count", 4)), "`count` bytes",
            "bytes from byte `addr` of memory `mem`; waits while the engine is busy"),
    Command(0x05, "INFO", (), "15 words (60 bytes)",
            "magic 0xF9B0B0A7, lanes P, feature-map bytes, weight bytes, output bytes, clock Hz, baud, "
            "line-buffer words, parameter-buffer channels, block-pointer entries, weight-buffer words, "
            "the engine's feature-map and output port beats (bytes), its depthwise column walk (1 or 0), "
            "its loader ways"),
]
CMD = {c.name: c for c in COMMANDS}
# the generation parameters the driver and the engine's model need: the memories and buffers it
# tiles for, and the ports and stages the cycle estimate depends on (hw/model.predict)
INFO_FIELDS = ("magic", "lanes", "fm_bytes", "w_bytes", "out_bytes", "clk_hz", "baud", "linebuf_words",
               "max_channels", "max_blocks", "wbuf_words", "fm_beat_bytes", "out_beat_bytes", "dw_walk",
               "fm_ways")
INFO_BYTES = 4 * len(INFO_FIELDS)

MEMORIES = {0: ("FM", "feature-map memory, byte addresses (the engine's IN_BASE space)"),
            1: ("WEIGHTS", "weight memory, byte address = word * P + lane (W_BASE / P_BASE space, in words)"),
            2: ("OUT", "output memory, byte addresses (the engine's OUT_BASE space)")}
MEM = {name: i for i, (name, _) in MEMORIES.items()}


def write_reg(addr: int, value: int) -> bytes:
    return struct.pack("<BBI", CMD["WRITE_REG"].code, addr, value & 0xFFFF_FFFF)


def read_reg(addr: int) -> bytes:
    return struct.pack("<BB", CMD["READ_REG"].code, addr)


def write_mem(mem: int, addr: int, data: bytes) -> bytes:
    return struct.pack("<BBII", CMD["WRITE_MEM"].code, mem, addr, len(data)) + bytes(data)


def read_mem(mem: int, addr: int, count: int) -> bytes:
    return struct.pack("<BBII", CMD["READ_MEM"].code, mem, addr, count)


def info() -> bytes:
    return bytes([CMD["INFO"].code])


def parse_info(reply: bytes) -> dict:
    d = dict(zip(INFO_FIELDS, struct.unpack(f"<{len(INFO_FIELDS)}I", reply)))
    if d["magic"] != INFO_MAGIC:
        raise RuntimeError(f"the board answered INFO with magic 0x{d['magic']:08X}, not 0x{INFO_MAGIC:08X}: "
                           f"is this an fmprune bitstream, and is the baud rate right?")
    return d


def markdown() -> str:
    lines = ["| code | command | fields after the code | reply | meaning |", "| --- | --- | --- | --- | --- |"]
    for c in COMMANDS:
        f = ", ".join(f"{n} ({b} B)" for n, b in c.fields) or "none"
        lines.append(f"| 0x{c.code:02X} | `{c.name}` | {f} | {c.reply} | {c.doc} |")
    lines += ["", "| mem | name | meaning |", "| --- | --- | --- |"]
    lines += [f"| {i} | `{n}` | {d} |" for i, (n, d) in MEMORIES.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
