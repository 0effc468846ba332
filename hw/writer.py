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


class Packer(wiring.Component):
    """Eight requantised values, in channel order, into a ``Block``; the blocks follow the output
    stage's order (output row, block group, column, block within the group).

    The packer keeps its own counters of that order (j, ox, bg, oy). Its loop levels are
    registers two cycles behind the counters (pz[1] j at its last, pz[2] j and ox, pz[3] j, ox and
    bg: the row's last block): a block takes eight values, so the counters step at most once in
    eight cycles and the levels are in step by the next block.

    Parameters
    ----------
    lanes : int
        P (the block group holds max(P, 8) channels).

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer (OUT_H, OUT_W, DEPTHWISE, OUT_LAYOUT; n_bg, cb_out).
    clear : In(1)
        The run's first cycle: start from the first block.
    i : In(stream.Signature(9))
        A requantised value (bits 0-7) and its "|y| > EPS_OUT" flag (bit 8).
    o : Out(stream.Signature(Block()))
        The blocks. ``o.valid`` is the eighth value's ``i.valid``; ``i.ready`` is low only while
        that value waits for ``o.ready``.
    done : Out(1)
        The last block of the layer has been handed over (until ``clear``).
    """

    def __init__(self, lanes):
        self.P, self.Q = lanes, max(lanes, BLOCK)
        super().__init__({"desc": In(Descriptor()), "derived": In(Derived(lanes)), "clear": In(1),
                          "i": In(stream.Signature(9)), "o": Out(stream.Signature(Block())), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d, dv = self.desc, self.derived
        out_cmp, Wo, Ho = d.OUT_LAYOUT, d.OUT_W, d.OUT_H
        pk_vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        pk_big = Signal(8)                   # lanes of pk_vals with |y| > EPS_OUT
        pk_i = Signal(3)
        pk_j = Signal(4)                     # block within the group of Q channels
        pk_ox = Signal(16)
        pk_bg = Signal(16)
        pk_oy = Signal(16)
        blocks_per_bg = Mux(d.DEPTHWISE, 1, self.Q // BLOCK)
        pk_last = dict(j=pk_j + 1 >= blocks_per_bg, ox=pk_ox + 1 >= Wo, bg=pk_bg + 1 >= dv.n_bg)
        pk_flag = {n: Signal(name=f"pk_{n}_last") for n in pk_last}
        m.d.sync += [pk_flag[n].eq(v) for n, v in pk_last.items()]
        pz = [Const(1)] + [Signal(name=f"pk_z{i}") for i in range(1, 4)]
        m.d.sync += [pz[1].eq(pk_flag["j"]), pz[2].eq(pk_flag["j"] & pk_flag["ox"]),
                     pz[3].eq(pk_flag["j"] & pk_flag["ox"] & pk_flag["bg"])]
        pk_oy_last = Signal()                # pk_oy + 1 == Ho
        pk_row = Signal(32)                  # pk_oy * Wo
        block_ready = Signal()               # the value arriving is the block's eighth
        m.d.comb += block_ready.eq(pk_i == BLOCK - 1)
        bcb = Signal(16)                     # pk_bg * blocks_per_bg + pk_j, the block made next
        pk_bg_cb = Signal(16)                # pk_bg * blocks_per_bg, kept as a running sum
        m.d.comb += bcb.eq(pk_bg_cb + pk_j)
        # the block with the arriving value in its lane
        vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        big = Signal(8)
        m.d.comb += [vals.eq(pk_vals), vals[pk_i].eq(self.i.payload[:8]),
                     big.eq(pk_big | Mux(self.i.payload[8], Const(1, 8) << pk_i, 0))]
        m.d.comb += [self.i.ready.eq(~block_ready | self.o.ready), self.o.valid.eq(self.i.valid & block_ready),
                     self.o.payload.values.eq(vals), self.o.payload.mask.eq(Mux(out_cmp, big, 0xFF)),
                     self.o.payload.cb.eq(bcb), self.o.payload.off.eq(Mux(out_cmp, 0, (pk_row + pk_ox) * BLOCK)),
                     self.o.payload.keep.eq(bcb < dv.cb_out)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [pk_vals.eq(vals), pk_big.eq(big), pk_i.eq(pk_i + 1)]
            with m.If(block_ready):
                m.d.sync += pk_big.eq(0)
                # the next block: j, then ox, bg, oy (level n steps when pz[n-1] and not pz[n])
                with m.If(~pz[1]):
                    m.d.sync += pk_j.eq(pk_j + 1)
                with m.Else():
                    m.d.sync += pk_j.eq(0)
                with m.If(pz[1] & ~pz[2]):
                    m.d.sync += pk_ox.eq(pk_ox + 1)
                with m.If(pz[2]):
                    m.d.sync += pk_ox.eq(0)
                with m.If(pz[2] & ~pz[3]):
                    m.d.sync += [pk_bg.eq(pk_bg + 1), pk_bg_cb.eq(pk_bg_cb + blocks_per_bg)]
                with m.If(pz[3]):
                    m.d.sync += [pk_bg.eq(0), pk_bg_cb.eq(0),
                                 pk_oy.eq(pk_oy + 1), pk_oy_last.eq(pk_oy + 2 == Ho), pk_row.eq(pk_row + Wo)]
                    with m.If(pk_oy_last):
                        m.d.sync += self.done.eq(1)
        with m.If(self.clear):
            m.d.sync += [pk_i.eq(0), pk_big.eq(0), pk_j.eq(0), pk_ox.eq(0), pk_bg.eq(0), pk_oy.eq(0),
                         self.done.eq(0), pk_row.eq(0), pk_bg_cb.eq(0), pk_oy_last.eq(Ho <= 1)]
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
