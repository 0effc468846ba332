"""The engine's register map: the one definition used by the gateware (hw/engine.py), the host
driver, the tests and docs/engine.md (`python -m fmprune.sw.regs` prints the table).

Every register is 32 bits wide at a byte offset 4 * index; the CSR bus addresses words."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reg:
    name: str
    access: str      # rw, ro, wo
    width: int
    doc: str


REGISTERS = [
    Reg("ID", "ro", 32, "0xF9B0_0000 | lanes P"),
    Reg("CTRL", "wo", 1, "write 1: start the layer in the descriptor"),
    Reg("STATUS", "ro", 16, "bit 0 busy, bit 1 done (cleared by start), bits 15:8 error code"),
    Reg("KERNEL", "rw", 4, "kernel size k (k x k), 1..11"),
    Reg("STRIDE", "rw", 3, "stride, 1..4"),
    Reg("PAD", "rw", 4, "zero padding on every side, 0..k-1"),
    Reg("DEPTHWISE", "rw", 1, "1: groups = channels (depthwise), 0: groups = 1"),
    Reg("DENSE_MODE", "rw", 1, "1: zero skipping off (the baseline); 0: skip values with |x| <= EPS_IN"),
    Reg("IN_LAYOUT", "rw", 1, "input feature-map layout: 0 dense, 1 compressed (docs/fmformat.md)"),
    Reg("OUT_LAYOUT", "rw", 1, "output feature-map layout: 0 dense, 1 compressed"),
    Reg("CLAMP_LO", "rw", 8, "activation clamp minimum, signed int8, <= 0"),
    Reg("CLAMP_HI", "rw", 8, "activation clamp maximum, signed int8, >= 0"),
    Reg("EPS_IN", "rw", 7, "input pruning threshold: |x| <= EPS_IN is skipped (int8 units)"),
    Reg("EPS_OUT", "rw", 7, "output compression threshold: |y| <= EPS_OUT is not stored"),
    Reg("IN_C", "rw", 16, "input channels C"),
    Reg("IN_H", "rw", 16, "input height H"),
    Reg("IN_W", "rw", 16, "input width W"),
    Reg("OUT_K", "rw", 16, "output channels K"),
    Reg("OUT_H", "rw", 16, "output height, must be (H + 2 PAD - k) / STRIDE + 1"),
    Reg("OUT_W", "rw", 16, "output width, must be (W + 2 PAD - k) / STRIDE + 1"),
    Reg("IN_BASE", "rw", 32, "input feature map: byte address on the feature-map read port"),
    Reg("W_BASE", "rw", 32, "weights: word address on the weight read port (P bytes a word)"),
    Reg("P_BASE", "rw", 32, "per-channel bias / multiplier / shift: word address on the weight port"),
    Reg("OUT_BASE", "rw", 32, "output feature map: byte address on the write port"),
    Reg("WEIGHT_BUFFER", "rw", 1, "1: the run's weights are read once into the on-chip weight buffer and "
        "used from there; 0: a weight word is read from the port for every operand"),
    Reg("WBUF_WORDS", "ro", 32, "the weight buffer's words of P bytes (a generation parameter; 0: none)"),
    Reg("FM_BEAT_BYTES", "ro", 5, "bytes a beat of the feature-map read port (a generation parameter: 1, 2, 4, 8 or 16)"),
    Reg("OUT_BEAT_BYTES", "ro", 5, "bytes a beat of the output write port (a generation parameter: 1, 2, 4, 8 or 16)"),
    Reg("CYCLES", "ro", 32, "busy cycles of the last run"),
    Reg("STALL_CYCLES", "ro", 32, "cycles a memory port held the engine up (request refused or data late)"),
    Reg("FM_VALUE_BYTES", "ro", 32, "feature-map value bytes read"),
    Reg("FM_BITMAP_BYTES", "ro", 32, "feature-map bitmap bytes read"),
    Reg("FM_PORT_BYTES", "ro", 32, "bytes the feature-map port delivered (beats x FM_BEAT_BYTES): the records' bytes "
        "and the beats' bytes outside them (alignment, a compressed row's read-ahead)"),
    Reg("VALUES_SKIPPED", "ro", 32, "activation operands skipped (pruned, zero, or padding) "),
    Reg("WEIGHT_BYTES", "ro", 32, "weight bytes read (P per word)"),
    Reg("PARAM_BYTES", "ro", 32, "bias / multiplier / shift bytes read (P per word)"),
    Reg("OUT_BYTES", "ro", 32, "output bytes written (strobed)"),
    Reg("MACS", "ro", 32, "multiply-accumulates issued on real output channels"),
]

ADDR = {r.name: i for i, r in enumerate(REGISTERS)}
ADDR_WIDTH = max(1, (len(REGISTERS) - 1).bit_length())
ID_MAGIC = 0xF9B0_0000


def engine_id(lanes: int) -> int:
    """The ID register's value for an engine of `lanes` lanes."""
    return ID_MAGIC | lanes


COUNTERS = [r.name for r in REGISTERS[ADDR["CYCLES"]:]]
DESCRIPTOR = [r.name for r in REGISTERS if r.access == "rw"]

ERRORS = {
    0: ("OK", "no error"),
    1: ("ZERO_SIZE", "a size, the kernel or the stride is 0"),
    2: ("RANGE", "kernel > 11, stride > 4, PAD >= kernel, CLAMP_LO > 0 or CLAMP_HI < 0"),
    3: ("SHAPE", "OUT_H / OUT_W do not follow from the input, kernel, stride and padding"),
    4: ("GROUPS", "depthwise with OUT_K != IN_C"),
    5: ("LINE_BUFFER", "fewer than max(k, stride) input rows fit the line buffer (a row: IN_W x ceil(ceil(IN_C / 8) / ways) words in each of its banks, a bank a loader way)"),
    6: ("CHANNELS", "OUT_K exceeds the parameter buffer, or ceil(IN_C / 8) the block-pointer table"),
    7: ("ADDRESS", "a feature-map, weight or parameter range runs past the end of the address space"),
    8: ("WEIGHT_BUFFER", "WEIGHT_BUFFER = 1 and the layer's weight words exceed WBUF_WORDS: run fewer output "
        "channels at a time, or WEIGHT_BUFFER = 0"),
}
ERROR_CODE = {name: code for code, (name, _) in ERRORS.items()}


def markdown() -> str:
    lines = ["| word | byte | name | access | bits | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(REGISTERS):
        lines.append(f"| {i} | 0x{4 * i:02X} | `{r.name}` | {r.access} | {r.width} | {r.doc} |")
    lines += ["", "| code | name | meaning |", "| --- | --- | --- |"]
    lines += [f"| {c} | `{n}` | {d} |" for c, (n, d) in ERRORS.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
