"""The engine's external port shapes: the one definition used by the engine (hw/engine.py), the
simulation memories (hw/simmem.py), the board memories and bridge (boards/) and the generated
Verilog's port list (hw/verilog.py).

* ``CSRSignature``: the register bus (the register map is sw/regs.py);
* ``WriteReq``: the payload of the output write stream, one beat with its byte strobes;
* ``Descriptor``: the layer descriptor (sw/regs.py's read-write registers at their widths), as
  the register block hands it to the stages.

The read ports are plain ``lib.stream`` streams: 32-bit addresses out, data in (8 fm_bytes bits on the
feature-map port's beats, 8 P bits on the weight port)."""
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..sw import regs


class CSRSignature(wiring.Signature):
    """A minimal register bus, from the initiator's side: write `w_data` to word `addr` on `w_stb`;
    `r_data` is the register at `addr`, combinationally."""
    def __init__(self):
        super().__init__({"addr": Out(regs.ADDR_WIDTH), "w_data": Out(32), "w_stb": Out(1),
                          "r_data": In(32)})


class WriteReq(data.StructLayout):
    """One beat write: `data` (`data_bytes` bytes, byte i in bits 8i+7..8i) to beat address `addr`
    (byte address / data_bytes), byte i written where `strobe` bit i is set."""
    def __init__(self, addr_width=32, data_bytes=1):
        super().__init__({"addr": addr_width, "data": 8 * data_bytes, "strobe": data_bytes})


class Descriptor(data.StructLayout):
    """The layer descriptor: one field per read-write register of sw/regs.py, named as there
    (``desc.IN_C``), at the register's width. CLAMP_LO and CLAMP_HI are the raw bytes (signed int8:
    ``.as_signed()``)."""
    def __init__(self):
        super().__init__({r.name: r.width for r in regs.REGISTERS if r.access == "rw"})
