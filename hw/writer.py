"""The output end of the engine: the packer gathers the requantised values of eight output
channels into a block (one pixel of one output channel block), the writer puts each block into
the output feature map in its layout (docs/fmformat.md), a byte a cycle."""
from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK
from .arith import lowest_set
from .ports import Descriptor, WriteReq
from .setup import Derived


class Block(data.StructLayout):
    """One pixel of one output channel block, from the packer to the writer."""
    def __init__(self):
        super().__init__({
            "values": data.ArrayLayout(signed(8), BLOCK),   # channels 8 cb .. 8 cb + 7
            "mask": 8,                      # the lanes to store: |y| > EPS_OUT (compressed), all (dense)
            "cb": 16,                       # the output channel block
            "off": 32,                      # dense: 8 * (oy * Wo + ox), the pixel's byte in its block; compressed: 0
            "keep": 1,                      # cb < ceil(K / 8): a block past K is dropped
        })


class BlockMeta(data.StructLayout):
    """A block's record, from the output stage (issued with the block's first lane) to the packer
    (taken with the block's eighth value)."""
    def __init__(self):
        super().__init__({
            "cb": 16,                       # the output channel block
            "off": 32,                      # 8 * (oy * Wo + ox): the pixel's byte in a dense block
            "last": 1,                      # the layer's last block
        })


class Packer(wiring.Component):
    """Eight requantised values, in channel order, into a ``Block``, with the block's record
    (``BlockMeta``, from the output stage) for its channel block and pixel: the packer keeps no
    loop counters.

    Parameters
    ----------
    lanes : int
        P.

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer (OUT_LAYOUT; cb_out).
    clear : In(1)
        The run's first cycle: start from the first block.
    i : In(stream.Signature(9))
        A requantised value (bits 0-7) and its "|y| > EPS_OUT" flag (bit 8).
    meta : In(stream.Signature(BlockMeta()))
        The blocks' records, one taken with each block's eighth value.
    o : Out(stream.Signature(Block()))
        The blocks. ``o.valid`` is the eighth value's ``i.valid`` (with its record there);
        ``i.ready`` is low only while that value waits for ``o.ready``.
    done : Out(1)
        The layer's last block has been handed over (until ``clear``).
    """

    def __init__(self, lanes):
        self.P = lanes
        super().__init__({"desc": In(Descriptor()), "derived": In(Derived(lanes)), "clear": In(1),
                          "i": In(stream.Signature(9)), "meta": In(stream.Signature(BlockMeta())),
                          "o": Out(stream.Signature(Block())), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        out_cmp = self.desc.OUT_LAYOUT
        pk_vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        pk_big = Signal(8)                   # lanes of pk_vals with |y| > EPS_OUT
        pk_i = Signal(3)
        block_ready = Signal()               # the value arriving is the block's eighth
        m.d.comb += block_ready.eq(pk_i == BLOCK - 1)
        # the block with the arriving value in its lane
        vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        big = Signal(8)
        rec = self.meta.payload
        m.d.comb += [vals.eq(pk_vals), vals[pk_i].eq(self.i.payload[:8]),
                     big.eq(pk_big | Mux(self.i.payload[8], Const(1, 8) << pk_i, 0))]
        m.d.comb += [self.i.ready.eq(~block_ready | (self.o.ready & self.meta.valid)),
                     self.o.valid.eq(self.i.valid & block_ready & self.meta.valid),
                     self.meta.ready.eq(self.o.valid & self.o.ready),
                     self.o.payload.values.eq(vals), self.o.payload.mask.eq(Mux(out_cmp, big, 0xFF)),
                     self.o.payload.cb.eq(rec.cb), self.o.payload.off.eq(Mux(out_cmp, 0, rec.off)),
                     self.o.payload.keep.eq(rec.cb < self.derived.cb_out)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [pk_vals.eq(vals), pk_big.eq(big), pk_i.eq(pk_i + 1)]
            with m.If(block_ready):
                m.d.sync += pk_big.eq(0)
                with m.If(rec.last):
                    m.d.sync += self.done.eq(1)
        with m.If(self.clear):
            m.d.sync += [pk_i.eq(0), pk_big.eq(0), self.done.eq(0)]
        return m


class Writer(wiring.Component):
    """Each kept ``Block`` into the output feature map, a byte a cycle: compressed, the bitmap
    byte then the stored values in lane order at the block's next free byte; dense, the eight
    values at the block's base plus ``off``. A table of block pointers (block RAM, one word per
    output channel block) holds each block's next free byte (compressed) or its base (dense); the
    control stage fills it before the run (``init_*``: OUT_BASE + cb * block stride).

    Parameters
    ----------
    max_blocks : int
        The table's depth: output channel blocks at most.

    Attributes
    ----------
    compressed : In(1)
        OUT_LAYOUT.
    clear : In(1)
        The run's first cycle: drop a block in progress (none is, after a finished run).
    init_en, init_addr, init_data : In(1), In(range(max_blocks)), In(32)
        A write to the pointer table.
    i : In(stream.Signature(Block()))
        The blocks; ``i.ready`` is a register (no block in progress).
    out : Out(stream.Signature(WriteReq()))
        The byte writes. The block's pointer leaves the table in the cycle after a block is
        taken, so a block's first byte comes two cycles after it.
    busy : Out(1)
        A block is being written.
    """

    def __init__(self, max_blocks):
        self.max_blocks = max_blocks
        super().__init__({"compressed": In(1), "clear": In(1), "init_en": In(1), "init_addr": In(range(max_blocks)),
                          "init_data": In(32), "i": In(stream.Signature(Block())),
                          "out": Out(stream.Signature(WriteReq())), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.out_ptr = out_ptr = Memory(shape=32, depth=self.max_blocks, init=[])
        op_w = out_ptr.write_port()
        op_r = out_ptr.read_port()
        m.d.comb += [op_w.addr.eq(self.init_addr), op_w.data.eq(self.init_data), op_w.en.eq(self.init_en)]
        wr_busy = self.busy
        wr_vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        wr_mask = Signal(8)
        wr_cb = Signal(16)
        wr_off = Signal(32)
        wr_i = Signal(4)
        wr_ptr = Signal(32)
        wr_start = Signal()
        take = Signal()
        m.d.comb += [self.i.ready.eq(~wr_busy), take.eq(self.i.valid & self.i.ready)]
        # the pointer table is read synchronously: address the next block as it is handed over
        m.d.comb += op_r.addr.eq(Mux(take, self.i.payload.cb, wr_cb))
        with m.If(take):
            p = self.i.payload
            m.d.sync += [wr_busy.eq(p.keep), wr_vals.eq(p.values), wr_mask.eq(p.mask), wr_cb.eq(p.cb),
                         wr_off.eq(p.off), wr_i.eq(0), wr_start.eq(1)]
        wr_low = lowest_set(m, wr_mask, BLOCK, "wr_low")     # compressed: the next stored lane
        with m.If(wr_busy):
            with m.If(wr_start):
                # the block's pointer: compressed, the next free byte of the block; dense, the
                # block's base, to which wr_off adds. It is registered as it leaves the block RAM,
                # and the sum is formed after
                m.d.sync += [wr_start.eq(0), wr_ptr.eq(op_r.data)]
            with m.Elif(self.compressed):
                # byte 0: bitmap at wr_ptr; then the stored values in lane order
                m.d.comb += [self.out.valid.eq(1), self.out.payload.addr.eq(wr_ptr + wr_i),
                             self.out.payload.data.eq(Mux(wr_i == 0, wr_mask, wr_vals[wr_low]))]
                with m.If(self.out.ready):
                    m.d.sync += wr_i.eq(wr_i + 1)
                    with m.If(wr_i != 0):
                        m.d.sync += wr_mask.eq(wr_mask & (wr_mask - 1))
                    last_byte = Mux(wr_i == 0, wr_mask == 0, (wr_mask & (wr_mask - 1)) == 0)
                    with m.If(last_byte):
                        m.d.sync += wr_busy.eq(0)
                        m.d.comb += [op_w.addr.eq(wr_cb), op_w.data.eq(wr_ptr + wr_i + 1), op_w.en.eq(1)]
            with m.Else():
                m.d.comb += [self.out.valid.eq(1), self.out.payload.addr.eq(wr_ptr + wr_off + wr_i),
                             self.out.payload.data.eq(wr_vals[wr_i[:3]])]
                with m.If(self.out.ready):
                    m.d.sync += wr_i.eq(wr_i + 1)
                    with m.If(wr_i == BLOCK - 1):
                        m.d.sync += wr_busy.eq(0)
        with m.If(self.clear):
            m.d.sync += wr_busy.eq(0)
        return m
