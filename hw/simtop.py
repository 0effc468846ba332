"""The engine with its three memories (hw/simmem.py): the design the simulations run. The host
loads the memories' initial contents at construction, programs the registers through `csr`,
starts, and waits; everything per-cycle (memories, stalls) stays inside the design."""
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .engine import Engine
from .ports import CSRSignature
from .simmem import ReadMemory, WriteMemory


class SimTop(wiring.Component):
    csr: In(CSRSignature())
    busy: Out(1)
    error: Out(1)
    fm_reads: Out(32)
    w_reads: Out(32)
    out_writes: Out(32)
    out_bytes: Out(32)
    oob: Out(32)
    refused: Out(32)

    def __init__(self, lanes, fm_init, w_init, out_depth, *, fm_depth=None, w_depth=None,
                 stall_percent=0, out_stall_percent=None, seed=1, **engine_args):
        self.engine = Engine(lanes, **engine_args)
        # the feature map's bytes as beats of the engine's feature-map port (byte i of beat a: byte
        # a * fm_bytes + i); fm_depth is in bytes
        B = self.fm_bytes = self.engine.fm_bytes
        fm_init = list(fm_init)
        beats = [int.from_bytes(bytes(fm_init[a:a + B]), "little") for a in range(0, len(fm_init), B)]
        self.fm = ReadMemory(8 * B, -(-(fm_depth or max(1, len(fm_init))) // B), beats, stall_percent=stall_percent,
                             seed=seed)
        self.wm = ReadMemory(8 * lanes, w_depth or max(1, len(w_init)), w_init, stall_percent=stall_percent,
                             seed=seed + 11)
        # the output memory in beats of the engine's write port (out_depth is in bytes)
        Bo = self.out_beat_bytes = self.engine.out_bytes
        self.om = WriteMemory(-(-out_depth // Bo), data_bytes=Bo,
                              stall_percent=stall_percent if out_stall_percent is None else out_stall_percent,
                              seed=seed + 23)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = e = self.engine
        m.submodules.fm = self.fm
        m.submodules.wm = self.wm
        m.submodules.om = self.om
        wiring.connect(m, wiring.flipped(self.csr), e.csr)
        wiring.connect(m, e.fm_addr, self.fm.addr)
        wiring.connect(m, self.fm.data, e.fm_data)
        wiring.connect(m, e.w_addr, self.wm.addr)
        wiring.connect(m, self.wm.data, e.w_data)
        wiring.connect(m, e.out, self.om.req)
        m.d.comb += [self.busy.eq(e.busy), self.error.eq(e.error), self.fm_reads.eq(self.fm.reads),
                     self.w_reads.eq(self.wm.reads), self.out_writes.eq(self.om.writes), self.out_bytes.eq(self.om.bytes),
                     self.oob.eq(self.fm.oob + self.wm.oob + self.om.oob)]
        # the memories' own count of the cycles in which one of them refused a request of the busy
        # engine (the union over the three ports): a floor for the engine's STALL_CYCLES, which
        # also counts the cycles it waits for a weight word, a wait the memories cannot see
        refused = ((e.fm_addr.valid & ~e.fm_addr.ready) | (e.w_addr.valid & ~e.w_addr.ready) |
                   (e.out.valid & ~e.out.ready))
        with m.If(e.busy & refused):
            m.d.sync += self.refused.eq(self.refused + 1)
        return m
