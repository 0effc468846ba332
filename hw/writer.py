"""The output end of the engine: the packer gathers the requantised values of eight output
channels into a block (one pixel of one output channel block), the writer puts each block into
the output feature map in its layout (docs/fmformat.md), up to a block a cycle as beats of the
write port."""
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, check_port_bytes
from .arith import popcount
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
    """Each kept ``Block`` into the output feature map as beats of the write port (``out_bytes``
    bytes a beat, each byte with its strobe), up to a block a cycle: compressed, the block's record
    (the bitmap byte, then the stored values in lane order) at the block's next free byte; dense,
    the eight values at the block's base plus ``off``. A table of block pointers (block RAM, one
    word per output channel block) holds each block's next free byte (compressed) or its base
    (dense); the control stage fills it before the run (``init_*``: OUT_BASE + cb * block stride).

    Two steps and a queue: a block is taken and its pointer read from the table (``T``); in the
    next cycle (``R``) its record is formed, placed at its first byte's place in a beat, and
    entered into a queue of records with its first beat and its beats' count, and the table is
    written (the block's pointer advanced by the record's bytes; a block of the same channel block
    taken in that cycle takes the new pointer from a register, not from the table). The queue's
    head leaves a beat a cycle.

    Parameters
    ----------
    max_blocks : int
        The table's depth: output channel blocks at most.
    out_bytes : int
        Bytes a beat of the write port (1, 2, 4, 8 or 16).

    Attributes
    ----------
    compressed : In(1)
        OUT_LAYOUT.
    clear : In(1)
        The run's first cycle: drop anything in progress (nothing is, after a finished run).
    init_en, init_addr, init_data : In(1), In(range(max_blocks)), In(32)
        A write to the pointer table.
    i : In(stream.Signature(Block()))
        The blocks.
    out : Out(stream.Signature(WriteReq(data_bytes=out_bytes)))
        The beat writes: beat address (byte address / out_bytes), data, byte strobes.
    bytes_written : Out(range(out_bytes + 1))
        The strobed bytes of the beat written this cycle (the OUT_BYTES counter's increment).
    busy : Out(1)
        A block is being written.
    """

    def __init__(self, max_blocks, out_bytes=1):
        check_port_bytes("out_bytes", out_bytes)
        self.max_blocks, self.B = max_blocks, out_bytes
        # a record's beats at most: 9 bytes from the last byte of a beat on
        self.max_beats = -(-(out_bytes - 1 + BLOCK + 1) // out_bytes)
        super().__init__({"compressed": In(1), "clear": In(1), "init_en": In(1), "init_addr": In(range(max_blocks)),
                          "init_data": In(32), "i": In(stream.Signature(Block())),
                          "out": Out(stream.Signature(WriteReq(data_bytes=out_bytes))),
                          "bytes_written": Out(range(out_bytes + 1)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        B, NB = self.B, self.max_beats
        sh = B.bit_length() - 1
        m.submodules.out_ptr = out_ptr = Memory(shape=32, depth=self.max_blocks, init=[])
        op_w = out_ptr.write_port()
        op_r = out_ptr.read_port()
        rec_layout = data.StructLayout({"data": 8 * B * NB, "strobe": B * NB, "beat": 32, "beats": range(NB + 1)})
        m.submodules.queue = queue = SyncFIFOBuffered(width=rec_layout.size, depth=4)

        # T: the block taken, its pointer addressed
        t_valid = Signal()
        t_blk = Signal(Block())
        move = Signal()                      # the block in T is formed (R) this cycle
        take = Signal()
        m.d.comb += [move.eq(t_valid & (~t_blk.keep | queue.w_rdy)),
                     self.i.ready.eq(~t_valid | move), take.eq(self.i.valid & self.i.ready)]
        m.d.comb += op_r.addr.eq(Mux(take, self.i.payload.cb, t_blk.cb))
        with m.If(take):
            m.d.sync += [t_valid.eq(1), t_blk.eq(self.i.payload)]
        with m.Elif(move):
            m.d.sync += t_valid.eq(0)

        # R: the record, at its first byte's place in a beat. The pointer: the table's, or the
        # one written in the cycle before for the same block (the table returns it a cycle later)
        fwd_valid = Signal()
        fwd_cb = Signal(16)
        fwd_ptr = Signal(32)
        ptr = Signal(32)
        m.d.comb += ptr.eq(Mux(fwd_valid & (fwd_cb == t_blk.cb), fwd_ptr, op_r.data))
        first = Signal(32)                   # the record's first byte
        m.d.comb += first.eq(Mux(self.compressed, ptr, ptr + t_blk.off))
        mask = t_blk.mask
        n = Signal(range(BLOCK + 1))
        m.d.comb += n.eq(popcount(mask, BLOCK))
        size = Signal(range(BLOCK + 2))
        m.d.comb += size.eq(Mux(self.compressed, n + 1, BLOCK))
        # compressed: byte 0 the bitmap, byte 1 + (stored lanes below i) lane i's value
        packed = [Signal(8, name=f"packed{j}") for j in range(BLOCK)]
        for j in range(BLOCK):
            m.d.comb += packed[j].eq(0)
        for i in range(BLOCK):
            before = popcount(mask, i)
            for j in range(i + 1):
                with m.If(mask[i] & (before == j)):
                    m.d.comb += packed[j].eq(t_blk.values[i])
        record = Signal(8 * (BLOCK + 1))
        m.d.comb += record.eq(Mux(self.compressed, Cat(mask, *packed), Cat(t_blk.values, Const(0, 8))))
        lead = Signal(range(B))              # the first byte's place in its beat
        m.d.comb += lead.eq(first[:sh] if sh else 0)
        entry = Signal(rec_layout)
        m.d.comb += [entry.data.eq(record << Cat(Const(0, 3), lead)),
                     entry.strobe.eq(((Const(1, BLOCK + 2) << size) - 1) << lead),
                     entry.beat.eq(first >> sh),
                     entry.beats.eq((lead + size + (B - 1)) >> sh),
                     queue.w_data.eq(entry), queue.w_en.eq(move & t_blk.keep)]
        with m.If(self.init_en):
            m.d.comb += [op_w.addr.eq(self.init_addr), op_w.data.eq(self.init_data), op_w.en.eq(1)]
        with m.Elif(move & t_blk.keep & self.compressed):
            m.d.comb += [op_w.addr.eq(t_blk.cb), op_w.data.eq(first + size), op_w.en.eq(1)]
            m.d.sync += [fwd_valid.eq(1), fwd_cb.eq(t_blk.cb), fwd_ptr.eq(first + size)]

        # the queue's head, a beat a cycle
        head = Signal(rec_layout)
        m.d.comb += head.eq(queue.r_data)
        beat = Signal(range(NB))
        last = Signal()
        m.d.comb += [last.eq(beat + 1 == head.beats),
                     self.out.valid.eq(queue.r_rdy),
                     self.out.payload.addr.eq(head.beat + beat),
                     self.out.payload.data.eq(head.data.word_select(beat, 8 * B)),
                     self.out.payload.strobe.eq(head.strobe.word_select(beat, B)),
                     queue.r_en.eq(self.out.ready & last)]
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += beat.eq(Mux(last, 0, beat + 1))
            m.d.comb += self.bytes_written.eq(popcount(self.out.payload.strobe, B))
        m.d.comb += self.busy.eq(t_valid | queue.r_rdy | (queue.level != 0))
        with m.If(self.clear):
            m.d.sync += [t_valid.eq(0), fwd_valid.eq(0), beat.eq(0)]
        return m
