"""The output end of the engine: the packer gathers the requantised values of eight output
channels into a block (one pixel of one output channel block), the writer puts each block into
the output feature map in its layout (docs/fmformat.md), up to a block a cycle as beats of the
write port."""
import functools
import operator

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, check_port_bytes, requant_lanes
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
    """Eight requantised values, in channel order, R = min(P, 8) a step (the output stage's), into
    a ``Block``, with the block's record (``BlockMeta``, from the output stage) for its channel
    block and pixel: the packer keeps no loop counters.

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
    i : In(stream.Signature(data.ArrayLayout(9, R)))
        A step of R requantised values (bits 0-7 each) with their "|y| > EPS_OUT" flags (bit 8).
    meta : In(stream.Signature(BlockMeta()))
        The blocks' records, one taken with each block's last step.
    o : Out(stream.Signature(Block()))
        The blocks. ``o.valid`` is the last step's ``i.valid`` (with its record there);
        ``i.ready`` is low only while that step waits for ``o.ready``.
    done : Out(1)
        The layer's last block has been handed over (until ``clear``).
    """

    def __init__(self, lanes):
        self.P, self.R = lanes, requant_lanes(lanes)
        super().__init__({"desc": In(Descriptor()), "derived": In(Derived(lanes)), "clear": In(1),
                          "i": In(stream.Signature(data.ArrayLayout(9, self.R))), "meta": In(stream.Signature(BlockMeta())),
                          "o": Out(stream.Signature(Block())), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        R = self.R
        steps = BLOCK // R
        # OUT_LAYOUT, copied into a register here: it holds from before the run's start, and from
        # the register file straight into the mask and the writer's record counts it was the
        # ULX3S's critical path (11.0 ns at 6b87aba, 2.5 ns of it the flag's route)
        out_cmp = Signal()
        m.d.sync += out_cmp.eq(self.desc.OUT_LAYOUT)
        pk_vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        pk_big = Signal(8)                   # lanes of pk_vals with |y| > EPS_OUT
        pk_i = Signal(range(steps))          # the arriving step's place in its block
        block_ready = Signal()               # the step arriving is the block's last
        m.d.comb += block_ready.eq(pk_i == steps - 1)
        # the block with the arriving step in its lanes
        vals = Signal(data.ArrayLayout(signed(8), BLOCK))
        big = Signal(8)
        rec = self.meta.payload
        step = self.i.payload
        m.d.comb += [vals.eq(pk_vals), big.eq(pk_big)]
        for s in range(steps):
            with m.If(pk_i == s):
                for j in range(R):
                    m.d.comb += [vals[s * R + j].eq(step[j][:8]), big[s * R + j].eq(step[j][8])]
        m.d.comb += [self.i.ready.eq(~block_ready | (self.o.ready & self.meta.valid)),
                     self.o.valid.eq(self.i.valid & block_ready & self.meta.valid),
                     self.meta.ready.eq(self.o.valid & self.o.ready),
                     self.o.payload.values.eq(vals), self.o.payload.mask.eq(Mux(out_cmp, big, 0xFF)),
                     self.o.payload.cb.eq(rec.cb), self.o.payload.off.eq(Mux(out_cmp, 0, rec.off)),
                     self.o.payload.keep.eq(rec.cb < self.derived.cb_out)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [pk_vals.eq(vals), pk_big.eq(big), pk_i.eq(Mux(block_ready, 0, pk_i + 1))]
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

    Four steps in lockstep, then a queue of records (each step moves when the queue has room for
    what the steps hold, ``go``, a register, so none waits on the port within a cycle and no
    back-pressure runs from the queue's level through the packer into the output stage's credits
    within one): A takes the block,
    reads its pointer from the table (block RAM) and forms its record; B registers the pointer (the
    RAM's output goes straight into a register); C forms the record's first byte and writes the
    table (the pointer advanced by the record's bytes); D places the record at its first byte's place in
    its beats and enters it into the queue with its first beat and its beats' count. A block read
    the table before the two blocks ahead of it wrote it: if one of them is of the same channel
    block, C takes that one's new pointer from its step's registers instead (the compares are
    made a step earlier, into registers). The queue's head leaves a beat a cycle.

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
        depth = 7
        m.submodules.queue = queue = SyncFIFOBuffered(width=rec_layout.size, depth=depth)
        cmp = Signal()                       # OUT_LAYOUT in a register of its own (as the packer's)
        m.d.sync += cmp.eq(self.compressed)

        # the steps move together when the queue has room for the four records they may hold
        # go: the queue had room for five records in the cycle before (it takes at most one a
        # cycle, so it has room for the four the steps may hold now), a register: from the queue's
        # level through the packer's ready into the output stage's credit count it was the
        # ULX3S's critical path (11.3 ns at fc1e6d6, 9 of them routes between the three stages)
        go = Signal()
        m.d.sync += go.eq(queue.level <= depth - 5)
        take = Signal()
        m.d.comb += [self.i.ready.eq(go), take.eq(self.i.valid & go)]
        m.d.comb += [op_r.addr.eq(self.i.payload.cb), op_r.en.eq(go)]

        def step(name):
            return Signal(name=f"{name}_valid"), Signal(Block(), name=f"{name}_blk")
        a_valid, a_blk = step("a")
        b_valid, b_blk = step("b")
        b_ptr = Signal(32)
        b_size = Signal(range(BLOCK + 2))    # the record's bytes and the record, formed in A
        b_record = Signal(8 * (BLOCK + 1))
        b_hit1 = Signal()                    # the block ahead (in C next) writes this block's pointer
        b_hit2 = Signal()                    # the block two ahead (in D next) wrote it
        c_valid = Signal()
        c_keep = Signal()
        c_wrote = Signal()                   # C wrote the table for c_cb
        c_cb = Signal(16)
        c_next = Signal(32)                  # the pointer C wrote
        c_first = Signal(32)
        c_size = Signal(range(BLOCK + 2))
        c_record = Signal(8 * (BLOCK + 1))
        d_next = Signal(32)

        # A: the record and its bytes from the block (compressed: byte 0 the bitmap, byte
        # 1 + (stored lanes below i) lane i's value). The counts of stored lanes are made as the
        # block enters A, from its mask, and registered with it (from A's own mask they were the
        # ULX3S's critical path, 10.2 ns): a_sel[j][i] says that byte 1 + j is lane i's value
        mask = a_blk.mask
        in_mask = self.i.payload.mask
        a_count = Signal(range(BLOCK + 2))   # 1 + the stored lanes
        a_sel = [Signal(BLOCK, name=f"a_sel{j}") for j in range(BLOCK)]
        size = Signal(range(BLOCK + 2))
        m.d.comb += size.eq(Mux(cmp, a_count, BLOCK))
        # (an AND-OR: byte j is the one lane i with mask[i] and j stored lanes below it)
        packed = [Signal(8, name=f"packed{j}") for j in range(BLOCK)]
        for j in range(BLOCK):
            m.d.comb += packed[j].eq(functools.reduce(operator.or_, [
                Mux(a_sel[j][i], a_blk.values[i], 0) for i in range(j, BLOCK)]))
        record = Signal(8 * (BLOCK + 1))
        m.d.comb += record.eq(Mux(cmp, Cat(mask, *packed), Cat(a_blk.values, Const(0, 8))))

        # C: the block in B's first byte and the table's new pointer
        writes = Signal()                    # B's block writes the table in C
        m.d.comb += writes.eq(b_valid & b_blk.keep & cmp)
        ptr = Signal(32)
        m.d.comb += ptr.eq(Mux(b_hit1, c_next, Mux(b_hit2, d_next, b_ptr)))
        first = Signal(32)
        m.d.comb += first.eq(Mux(cmp, ptr, ptr + b_blk.off))
        with m.If(self.init_en):
            m.d.comb += [op_w.addr.eq(self.init_addr), op_w.data.eq(self.init_data), op_w.en.eq(1)]
        with m.Elif(go & writes):
            m.d.comb += [op_w.addr.eq(b_blk.cb), op_w.data.eq(ptr + b_size), op_w.en.eq(1)]

        # D: the record in its beats
        lead = Signal(range(B))              # the first byte's place in its beat
        m.d.comb += lead.eq(c_first[:sh] if sh else 0)
        entry = Signal(rec_layout)
        m.d.comb += [entry.data.eq(c_record << Cat(Const(0, 3), lead)),
                     entry.strobe.eq(((Const(1, BLOCK + 2) << c_size) - 1) << lead),
                     entry.beat.eq(c_first >> sh),
                     entry.beats.eq((lead + c_size + (B - 1)) >> sh),
                     queue.w_data.eq(entry), queue.w_en.eq(go & c_valid & c_keep)]

        with m.If(go):
            m.d.sync += [a_valid.eq(take), a_blk.eq(self.i.payload), a_count.eq(popcount(in_mask, BLOCK) + 1),
                         *(a_sel[j][i].eq(in_mask[i] & (popcount(in_mask, i) == j))
                           for j in range(BLOCK) for i in range(j, BLOCK)),
                         b_valid.eq(a_valid), b_blk.eq(a_blk), b_ptr.eq(op_r.data), b_size.eq(size),
                         b_record.eq(record),
                         b_hit1.eq(a_valid & writes & (a_blk.cb == b_blk.cb)),
                         b_hit2.eq(a_valid & c_wrote & (a_blk.cb == c_cb)),
                         c_valid.eq(b_valid), c_keep.eq(b_blk.keep), c_wrote.eq(writes), c_cb.eq(b_blk.cb),
                         c_next.eq(ptr + b_size), c_first.eq(first), c_size.eq(b_size), c_record.eq(b_record),
                         d_next.eq(c_next)]

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
        m.d.comb += self.busy.eq(a_valid | b_valid | c_valid | queue.r_rdy | (queue.level != 0))
        with m.If(self.clear):
            m.d.sync += [a_valid.eq(0), b_valid.eq(0), c_valid.eq(0), c_wrote.eq(0), beat.eq(0)]
        return m
