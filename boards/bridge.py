"""UART-to-register/memory bridge: executes the commands of boards/protocol.py, arriving as bytes
on `rx`, against the engine's register bus and the board memories' host ports; replies on `tx`."""
from amaranth import Array, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..hw.ports import CSRSignature
from . import protocol
from .memory import HostPort


class Bridge(wiring.Component):
    def __init__(self, *, info: dict, mem_sizes: list, idle_timeout: int):
        """`info`: the INFO reply's fields; `mem_sizes`: bytes of each memory in protocol order;
        `idle_timeout`: clock cycles of silence after which a half-received command is dropped."""
        self.info = [int(info[f]) if f != "magic" else protocol.INFO_MAGIC for f in protocol.INFO_FIELDS]
        self.mem_sizes = list(mem_sizes)
        self.idle_timeout = idle_timeout
        self.addr_width = max(1, (max(mem_sizes) - 1).bit_length())
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "csr": Out(CSRSignature()),
            "mems": Out(HostPort(self.addr_width)).array(len(mem_sizes)),
            "busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        C = protocol.CMD
        n_fields = {c.code: sum(b for _, b in c.fields) for c in protocol.COMMANDS}
        cmd = Signal(8)
        hdr = Signal(8 * max(n_fields.values()))
        idx = Signal(range(max(n_fields.values()) + 1))
        need = Signal.like(idx)
        mem_id = hdr[0:8]
        addr = Signal(32)
        count = Signal(32)
        reply = Signal(32)                   # READ_REG value / one memory byte
        send_n = Signal(range(len(self.info) * 4 + 1))
        send_i = Signal.like(send_n)
        idle = Signal(range(self.idle_timeout + 1))
        info_bytes = Array(Const(w >> (8 * i) & 0xFF, 8) for w in self.info for i in range(4))

        m.d.comb += [self.csr.addr.eq(hdr[0:8]), self.csr.w_data.eq(hdr[8:40])]
        # the memory ports are driven from registers (they fan out to every block RAM): a write
        # or read decided in one cycle reaches the memories in the next
        for port in self.mems:
            m.d.sync += [port.we.eq(0), port.re.eq(0)]
        mem_rdata = Array(p.r_data for p in self.mems)[mem_id[:2]]

        # the silence timeout and "count is 0" are registers, kept in step with their counters
        timed_out = Signal()                 # idle == idle_timeout
        count_zero = Signal()                # count == 0
        with m.If(self.rx.valid):
            m.d.sync += [idle.eq(0), timed_out.eq(0)]
        with m.Elif(~timed_out):
            m.d.sync += [idle.eq(idle + 1), timed_out.eq(idle + 1 == self.idle_timeout)]

        with m.FSM():
            with m.State("CMD"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [cmd.eq(self.rx.payload), idx.eq(0)]
                    with m.Switch(self.rx.payload):
                        for code, n in n_fields.items():
                            with m.Case(code):
                                m.d.sync += need.eq(n)
                                m.next = "ARGS" if n else "EXEC"
                        with m.Default():        # not a command: dropped
                            pass
            with m.State("ARGS"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [hdr.word_select(idx, 8).eq(self.rx.payload), idx.eq(idx + 1)]
                    with m.If(idx + 1 == need):
                        m.next = "EXEC"
                with m.Elif(timed_out):
                    m.next = "CMD"
            with m.State("EXEC"):
                m.d.sync += [addr.eq(hdr[8:40]), count.eq(hdr[40:72]), count_zero.eq(hdr[40:72] == 0), send_i.eq(0)]
                with m.Switch(cmd):
                    with m.Case(C["WRITE_REG"].code):
                        m.d.comb += self.csr.w_stb.eq(1)
                        m.next = "ACK"
                    with m.Case(C["READ_REG"].code):
                        m.d.sync += [reply.eq(self.csr.r_data), send_n.eq(4)]
                        m.next = "SEND"
                    with m.Case(C["INFO"].code):
                        m.d.sync += send_n.eq(len(info_bytes))
                        m.next = "SEND_INFO"
                    with m.Case(C["WRITE_MEM"].code):
                        m.next = "WDATA"
                    with m.Case(C["READ_MEM"].code):
                        m.next = "RREAD"
            with m.State("ACK"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(protocol.ACK)]
                with m.If(self.tx.ready):
                    m.next = "CMD"
            with m.State("SEND"):                # send_n bytes of `reply`, low first
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(reply.word_select(send_i[:2], 8))]
                with m.If(self.tx.ready):
                    m.d.sync += send_i.eq(send_i + 1)
                    with m.If(send_i + 1 == send_n):
                        m.next = "CMD"
            with m.State("SEND_INFO"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(info_bytes[send_i])]
                with m.If(self.tx.ready):
                    m.d.sync += send_i.eq(send_i + 1)
                    with m.If(send_i + 1 == send_n):
                        m.next = "CMD"
            with m.State("WDATA"):               # one data byte a step, while the engine is idle
                with m.If(count_zero):
                    m.next = "ACK"
                with m.Elif(~self.busy):
                    m.d.comb += self.rx.ready.eq(1)
                    with m.If(self.rx.valid):
                        for i, port in enumerate(self.mems):
                            m.d.sync += [port.we.eq(mem_id == i), port.addr.eq(addr), port.w_data.eq(self.rx.payload)]
                        m.d.sync += [addr.eq(addr + 1), count.eq(count - 1), count_zero.eq(count == 1)]
                    with m.Elif(timed_out):
                        m.next = "CMD"
            with m.State("RREAD"):
                with m.If(count_zero):
                    m.next = "CMD"
                with m.Elif(~self.busy):
                    for i, port in enumerate(self.mems):
                        m.d.sync += [port.re.eq(mem_id == i), port.addr.eq(addr)]
                    m.next = "RWAIT"
            # a cycle for the registered strobe to reach the memory, then its read latency
            for i in range(HostPort.READ_LATENCY):
                with m.State(f"RWAIT{i}" if i else "RWAIT"):
                    m.next = f"RWAIT{i + 1}" if i + 1 < HostPort.READ_LATENCY else "RLATCH"
            with m.State("RLATCH"):
                m.d.sync += [reply.eq(Mux(mem_id < len(self.mems), mem_rdata, 0)), send_n.eq(1), send_i.eq(0),
                             addr.eq(addr + 1), count.eq(count - 1), count_zero.eq(count == 1)]
                m.next = "RSEND"
            with m.State("RSEND"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(reply[:8])]
                with m.If(self.tx.ready):
                    m.next = "RREAD"
        return m
