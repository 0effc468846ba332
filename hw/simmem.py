"""Memory models for simulation: block-RAM-backed read and write ports with the engine's
valid/ready handshakes, random stalls from an LFSR inside the design (no Python per cycle), and
their own transaction counters, independent of the engine's."""
from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .ports import WriteReq


class LFSRStall(wiring.Component):
    """`stall` is 1 in about `percent` % of cycles (0 = never), from a 16-bit Galois LFSR."""
    stall: Out(1)

    def __init__(self, seed, percent):
        if not 0 <= percent <= 100:
            raise ValueError("stall percent must be in 0..100")
        self.seed = (seed & 0xFFFF) or 1
        self.threshold = percent * 256 // 100
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        state = Signal(16, init=self.seed)
        m.d.sync += state.eq((state >> 1) ^ (state[0].replicate(16) & 0xB400))
        m.d.comb += self.stall.eq(state[:8] < self.threshold)
        return m


class ReadMemory(wiring.Component):
    """Addresses in, data out in order. `reads` counts accepted addresses, `oob` those past the
    end (which read as 0)."""

    def __init__(self, width, depth, init=(), *, stall_percent=0, seed=1, max_pending=4):
        self.width, self.depth = width, depth
        self.stall_percent, self.seed, self.max_pending = stall_percent, seed, max_pending
        self.mem = Memory(shape=width, depth=depth, init=list(init))
        super().__init__({
            "addr": In(stream.Signature(32)),
            "data": Out(stream.Signature(width)),
            "reads": Out(32),
            "oob": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.width, depth=self.max_pending)
        m.submodules.sa = sa = LFSRStall(self.seed, self.stall_percent)
        m.submodules.sd = sd = LFSRStall(self.seed * 7 + 3, self.stall_percent)
        rp = self.mem.read_port()
        inflight = Signal()
        oob = Signal()
        # accept when the FIFO can take this read and the one in flight
        room = fifo.level + inflight < self.max_pending
        take = Signal()
        m.d.comb += [
            self.addr.ready.eq(room & ~sa.stall),
            take.eq(self.addr.valid & self.addr.ready),
            rp.addr.eq(self.addr.payload),
            fifo.w_data.eq(rp.data & ~oob.replicate(self.width)),
            fifo.w_en.eq(inflight),
            self.data.payload.eq(fifo.r_data),
            self.data.valid.eq(fifo.r_rdy & ~sd.stall),
            fifo.r_en.eq(self.data.valid & self.data.ready),
        ]
        m.d.sync += [inflight.eq(take), oob.eq(self.addr.payload >= self.depth)]
        with m.If(take):
            m.d.sync += self.reads.eq(self.reads + 1)
            with m.If(self.addr.payload >= self.depth):
                m.d.sync += self.oob.eq(self.oob + 1)
        return m


class WriteMemory(wiring.Component):
    """Beat writes {addr, data, strobe} of `data_bytes` bytes into `depth` beats. `writes` counts
    the beats, `bytes` their strobed bytes, `oob` the beats past the end (dropped)."""

    def __init__(self, depth, *, data_bytes=1, stall_percent=0, seed=5):
        self.depth, self.data_bytes, self.stall_percent, self.seed = depth, data_bytes, stall_percent, seed
        self.mem = Memory(shape=8 * data_bytes, depth=depth, init=[])
        super().__init__({
            "req": In(stream.Signature(WriteReq(data_bytes=data_bytes))),
            "writes": Out(32),
            "bytes": Out(32),
            "oob": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        m.submodules.s = s = LFSRStall(self.seed, self.stall_percent)
        wp = self.mem.write_port(granularity=8)
        take = self.req.valid & self.req.ready
        strobe = self.req.payload.strobe
        m.d.comb += [
            self.req.ready.eq(~s.stall),
            wp.addr.eq(self.req.payload.addr),
            wp.data.eq(self.req.payload.data),
            wp.en.eq(Mux(take & (self.req.payload.addr < self.depth), strobe, 0)),
        ]
        with m.If(take):
            m.d.sync += [self.writes.eq(self.writes + 1),
                         self.bytes.eq(self.bytes + sum(strobe[i] for i in range(self.data_bytes)))]
            with m.If(self.req.payload.addr >= self.depth):
                m.d.sync += self.oob.eq(self.oob + 1)
        return m
