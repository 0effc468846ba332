"""On-chip memories of a board: each has the engine's stream port on one side and a byte-wide host
port (the UART bridge's) on the other. Both share the memory's one address, so a memory is a
single-port RAM (block RAM on the ECP5; SPRAM on the iCE40UP5K, which has only one port): the
host may use it only while the engine is idle, which the bridge guarantees."""
from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..hw.ram import DP16KD_WIDTHS, dp16kd
from ..hw.ports import WriteReq


class HostPort(wiring.Signature):
    """Byte access from the bridge: `addr` a byte address; `we` writes `w_data`; `re` reads, and
    `r_data` holds the byte `READ_LATENCY` cycles after."""
    READ_LATENCY = 5
    def __init__(self, addr_width):
        super().__init__({"addr": Out(addr_width), "w_data": Out(8), "we": Out(1), "re": Out(1), "r_data": In(8)})


def _log2(n):
    if n < 1 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1


class BoardMemory(wiring.Component):
    """`depth` words of `word_bytes` bytes. `kind` "read": the engine reads units of
    `unit_bytes` (1: feature map, P: weights) through `addr` / `data`; "write": the engine writes
    bytes through `req`. A unit address past the end reads 0; a write past the end is dropped
    (the driver checks that each job fits)."""

    def __init__(self, kind, depth, word_bytes, unit_bytes=1, max_pending=6):
        assert kind in ("read", "write")
        if word_bytes % unit_bytes:
            raise ValueError("a memory word must hold a whole number of engine units")
        self.kind, self.depth, self.word_bytes, self.unit_bytes = kind, depth, word_bytes, unit_bytes
        self.max_pending = max_pending
        self.size = depth * word_bytes                       # bytes
        self.units = self.size // unit_bytes
        ports = {"host": In(HostPort(max(1, (self.size - 1).bit_length())))}
        if kind == "read":
            ports.update(addr=In(stream.Signature(32)), data=Out(stream.Signature(8 * unit_bytes)))
        else:
            ports.update(req=In(stream.Signature(WriteReq(data_bytes=unit_bytes))))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        wb, ub = self.word_bytes, self.unit_bytes
        # the one address: a register, made from its next value (it reaches every block RAM)
        addr = Signal(range(self.depth))
        addr_next = Signal(range(self.depth))
        m.d.sync += addr.eq(addr_next)
        # the RAM's output word goes straight into a register (a block RAM's clock-to-output time is
        # most of a 100 MHz cycle): every read has one more cycle of latency. On the ECP5 that
        # register is the block RAM's own output register (ECP5RAM); elsewhere a fabric register
        q_word = Signal(8 * wb)
        wp_data = Signal(8 * wb)
        # the byte-lane write enables are registers, made from their next values (wp_en_next), and
        # so are the ECP5 block RAMs' clock enables: both fan out to every block RAM of a lane
        wp_en = Signal(wb)
        wp_en_next = Signal(wb)
        m.d.sync += wp_en.eq(wp_en_next)
        if getattr(platform, "family", None) == "ecp5" and ECP5RAM.fits(self.depth):
            m.submodules.mem = ram = ECP5RAM(self.depth, wb)
            m.d.comb += [ram.addr.eq(addr), ram.w_data.eq(wp_data), ram.w_en.eq(wp_en), q_word.eq(ram.q)]
            m.d.sync += ram.ce.eq(ECP5RAM.clock_enables(wp_en_next))
        else:
            m.submodules.mem = mem = Memory(shape=8 * wb, depth=self.depth, init=[])
            wp = mem.write_port(granularity=8)
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(addr), rp.addr.eq(addr), wp.data.eq(wp_data), wp.en.eq(wp_en)]
            # the read output holds while a write happens, as the UP5K's SPRAM does ("no change")
            # (this form, the write enables' OR, is the one Yosys maps to the UP5K's SPRAM)
            m.d.comb += rp.en.eq(~wp.en.any())
            m.d.sync += q_word.eq(rp.data)
        # the host port is registered where it enters (the bridge sits far from the block RAMs,
        # and its address decodes into every lane's write enable)
        host = HostPort(len(self.host.addr)).flip().create(path=("host_q",))
        m.d.sync += [host.addr.eq(self.host.addr), host.w_data.eq(self.host.w_data),
                     host.we.eq(self.host.we), host.re.eq(self.host.re)]
        host_we_next = Mux(self.host.we, Const(1, wb) << (self.host.addr[:_log2(wb)] if wb > 1 else 0), 0)
        host_lane = Signal(range(wb))
        host_lane_q = Signal(range(wb))
        host_word_next = self.host.addr >> _log2(wb)
        host_lane_qq = Signal(range(wb))
        m.d.sync += [host_lane.eq(host.addr[:_log2(wb)] if wb > 1 else 0), host_lane_q.eq(host_lane),
                     host_lane_qq.eq(host_lane_q)]
        # the byte is selected from the registered word in two registered steps (a group of up to
        # four bytes next to the block RAMs, then the byte): it arrives HostPort.READ_LATENCY (5)
        # cycles after `re` (the address register, the RAM and its output register, the group,
        # the byte)
        gb = min(wb, 4)                                     # bytes a group
        group = Signal(8 * gb)
        m.d.sync += group.eq(q_word.word_select(host_lane_q >> _log2(gb), 8 * gb) if wb > gb else q_word)
        m.d.sync += self.host.r_data.eq(group.word_select(host_lane_qq[:_log2(gb)], 8) if gb > 1 else group)
        host_active = host.we | host.re

        if self.kind == "read":
            # an accepted address is registered before it reaches the RAM (the engine's address
            # logic and the RAM's address setup are then in different cycles), and the RAM's output
            # is registered (q_word): three reads in flight
            upw = wb // ub                                  # engine units per memory word
            # the queue holds the whole RAM word (the block RAMs' outputs go straight into it, as
            # they lie across the die) with the unit's place in it; the unit is selected after
            sub_bits = max(1, (upw - 1).bit_length())
            m.submodules.fifo = fifo = SyncFIFOBuffered(width=8 * wb + sub_bits + 1, depth=self.max_pending)
            a_valid = Signal()                              # address registered, RAM read this cycle
            a_unit = Signal(32)
            d_valid = Signal()                              # RAM output valid this cycle
            q_valid = Signal()                              # q_word valid this cycle
            sub = Signal(range(upw))
            q_sub = Signal(range(upw))
            oob = Signal()
            q_oob = Signal()
            # ready is a register: room for one more read counting those in flight and the one
            # that may be accepted this cycle. It does not look at the host port: the bridge uses
            # that only while the engine is idle, when the engine reads nothing.
            room = Signal()
            m.d.sync += room.eq(fifo.level + a_valid + d_valid + q_valid + 2 <= self.max_pending)
            take = Signal()
            m.d.comb += [self.addr.ready.eq(room), take.eq(self.addr.valid & self.addr.ready)]
            m.d.sync += [a_valid.eq(take), d_valid.eq(a_valid), oob.eq(a_unit >= self.units),
                         sub.eq(a_unit[:_log2(upw)] if upw > 1 else 0),
                         q_valid.eq(d_valid), q_sub.eq(sub), q_oob.eq(oob)]
            with m.If(take):
                m.d.sync += a_unit.eq(self.addr.payload)
            r_word, r_sub, r_oob = fifo.r_data[:8 * wb], fifo.r_data[8 * wb:-1], fifo.r_data[-1]
            unit = Mux(r_oob, 0, r_word.word_select(r_sub, 8 * ub) if upw > 1 else r_word)
            m.d.comb += [fifo.w_data.eq(Cat(q_word, q_sub, q_oob)), fifo.w_en.eq(q_valid)]
            if upw > 1:
                # a unit selected from the word is registered before it leaves (the selection and
                # the engine's use of the unit, the loader's compare against EPS_IN, are then in
                # different cycles): one more cycle of latency, full throughput
                o_valid = Signal()
                m.d.comb += [fifo.r_en.eq(~o_valid | self.data.ready), self.data.valid.eq(o_valid)]
                with m.If(fifo.r_en):
                    m.d.sync += [o_valid.eq(fifo.r_rdy), self.data.payload.eq(unit)]
            else:
                m.d.comb += [self.data.payload.eq(unit), self.data.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.data.ready)]
            engine_word_next = Mux(take, self.addr.payload, a_unit) >> _log2(upw)
        else:
            # an accepted write is registered (w_*), then decoded into the registered byte-lane
            # enables and address, which reach the RAM directly (the data a cycle later, in x_data)
            # (a beat of unit_bytes with its strobes: the beat's unit within the word selects the lanes)
            upw = wb // ub
            w_valid = Signal()
            w_unit = Signal(32)
            w_data = Signal(8 * ub)
            w_strobe = Signal(ub)
            x_data = Signal(8 * ub)
            m.d.comb += self.req.ready.eq(1)          # the host writes only while the engine is idle
            m.d.sync += w_valid.eq(self.req.valid & self.req.ready)
            with m.If(self.req.valid & self.req.ready):
                m.d.sync += [w_unit.eq(self.req.payload.addr), w_data.eq(self.req.payload.data),
                             w_strobe.eq(self.req.payload.strobe)]
            w_lane = Cat(Const(0, _log2(ub)), w_unit[:_log2(upw)]) if upw > 1 else 0
            x_en_next = Mux(w_valid & (w_unit < self.units), w_strobe << w_lane, 0)
            m.d.sync += x_data.eq(w_data)
            engine_word_next = w_unit >> _log2(upw)
            m.d.comb += wp_data.eq(Mux(host_active, host.w_data.replicate(wb), x_data.replicate(upw)))
            m.d.comb += wp_en_next.eq(Mux(self.host.we | self.host.re, host_we_next, x_en_next))
        m.d.comb += addr_next.eq(Mux(self.host.we | self.host.re, host_word_next, engine_word_next))
        if self.kind == "read":
            m.d.comb += [wp_data.eq(host.w_data.replicate(wb)), wp_en_next.eq(host_we_next)]
        return m


class ECP5RAM(wiring.Component):
    """A single-port RAM of `depth` words of `word_bytes` bytes from ECP5 DP16KD block RAMs (port A
    of each, hw/ram.dp16kd) with the output register on: `q` is the word at `addr` two cycles
    after, as a RAM read followed by a register, but the register is the block RAM's own. The
    whole word's output holds during a write, as the portable twin's (`rp.en = ~wp.en.any()`): a
    lane that does not write is disabled while another does. `ce` must be `clock_enables(w_en)`;
    it is a port so that it can come from a register. One block RAM per `width` bits of a byte
    lane."""

    @classmethod
    def fits(cls, depth):
        return depth in DP16KD_WIDTHS and DP16KD_WIDTHS[depth] in (1, 2, 4)

    def __init__(self, depth, word_bytes):
        assert self.fits(depth)
        self.depth, self.word_bytes = depth, word_bytes
        super().__init__({"addr": In(range(depth)), "w_data": In(8 * word_bytes), "w_en": In(word_bytes),
                          "ce": In(word_bytes), "q": Out(8 * word_bytes)})

    @staticmethod
    def clock_enables(w_en):
        """The lanes' clock enables for write enables `w_en`: all on when none writes, else
        the writing lanes only."""
        return w_en | Mux(w_en.any(), 0, (1 << len(w_en)) - 1)

    def elaborate(self, platform):
        m = Module()
        w = DP16KD_WIDTHS[self.depth]
        for lane in range(self.word_bytes):
            for part in range(8 // w):
                lo = 8 * lane + w * part
                m.submodules[f"bram_{lane}_{part}"] = dp16kd(
                    width=w, a_addr=self.addr, a_data=self.w_data[lo:lo + w], a_we=self.w_en[lane],
                    a_ce=self.ce[lane], a_q=self.q[lo:lo + w])
        return m
