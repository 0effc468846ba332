"""The fmprune engine: a streaming int8 convolution engine whose front end suppresses the fetch
and the MAC of zero / near-zero activations. See docs/engine.md for the dataflow.

Ports (all handshakes are lib.stream valid/ready; memory may stall any of them at any cycle):

* ``csr``: word-addressed register block (sw/regs.py);
* ``fm_addr`` / ``fm_data``: feature-map read port, byte addresses, 8-bit data, in order;
* ``w_addr`` / ``w_data``: weight read port, word addresses, P-byte words, in order;
* ``out``: write port, {byte address, 8-bit data};
* ``busy``, ``error``: for LEDs.
"""
from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, PARAM_BYTES, check_lanes, dw_lanes, param_words
from .loader import Loader
from .mac import MACLanes
from .output import OutputStage
from .ports import CSRSignature, WriteReq
from .queues import PipeRegister, TwoPlaceQueue
from .ram import RegisteredRAM
from .regfile import Registers
from .scanner import Scanner, Word
from .sequencer import Sequencer
from .setup import Setup
from .writer import Packer, Writer


class Engine(wiring.Component):
    def __init__(self, lanes=16, *, linebuf_depth=8192, max_channels=4096, max_blocks=4096, fifo_depth=8):
        check_lanes(lanes)
        self.P = lanes
        self.D = dw_lanes(lanes)
        self.Q = max(lanes, BLOCK)                  # channels per block group
        self.linebuf_depth = linebuf_depth
        self.max_channels = max_channels
        self.max_blocks = max_blocks
        if fifo_depth < 3:
            raise ValueError(f"fifo_depth={fifo_depth}: the MAC item queue needs at least 3 places")
        self.fifo_depth = fifo_depth
        super().__init__({
            "csr": In(CSRSignature()),
            "fm_addr": Out(stream.Signature(32)),
            "fm_data": In(stream.Signature(8)),
            "w_addr": Out(stream.Signature(32)),
            "w_data": In(stream.Signature(8 * lanes)),
            "out": Out(stream.Signature(WriteReq())),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P = self.P
        PW = param_words(P)

        # ---- registers (hw/regfile.py) -------------------------------------------------------
        m.submodules.regs = regfile = Registers(P)
        wiring.connect(m, wiring.flipped(self.csr), regfile.csr)
        reg = regfile.desc                   # the descriptor's fields, by register name
        inc = regfile.inc                    # the counters' increments
        status_busy = regfile.busy
        start = regfile.start
        m.d.comb += [self.busy.eq(status_busy), self.error.eq(regfile.error)]

        dw, out_cmp, K = reg["DEPTHWISE"], reg["OUT_LAYOUT"], reg["OUT_K"]

        # ---- descriptor set-up and checks (hw/setup.py) ------------------------------------
        m.submodules.setup = setup = Setup(P, linebuf_depth=self.linebuf_depth, max_channels=self.max_channels,
                                           max_blocks=self.max_blocks)
        m.d.comb += setup.desc.eq(regfile.desc)
        dv = setup.derived
        cb_in, cb_out, in_stride, out_stride = dv.cb_in, dv.cb_out, dv.in_stride, dv.out_stride

        # ---- memories --------------------------------------------------------------------
        # the line buffer's read data is registered (hw/ram.py; on the ECP5 inside the block RAM)
        m.submodules.linebuf = linebuf = RegisteredRAM(Word(), self.linebuf_depth)
        m.submodules.loader = loader = Loader(P, linebuf_depth=self.linebuf_depth, max_blocks=self.max_blocks)

        # the output stage with its parameter buffer (hw/output.py); the output end: the packer,
        # the writer and its block-pointer table (hw/writer.py)
        m.submodules.output = output = OutputStage(P, self.max_channels)
        m.submodules.packer = packer = Packer(P)
        m.submodules.writer = writer = Writer(self.max_blocks)

        # ---- control ---------------------------------------------------------------------
        init_i = Signal(14)
        init_last = Signal()                 # init_i + 1 >= max(cb_in, cb_out), kept in step
        init_in = Signal(40)
        init_out = Signal(40)
        pa_issue = Signal(32)                # parameter words requested
        pa_recv = Signal(32)                 # parameter words received
        pa_done = Signal()                   # pa_recv == pa_total, a register made from next values
        pa_recv_next = Signal(32)
        pa_total_m1 = Signal(32)
        pa_total = Signal(32)
        pa_asm = Signal(8 * P * PW)
        pa_j = Signal(range(PW + 1))
        pa_k = Signal(16)
        # the phases are registers set and cleared with the state changes (they fan out widely)
        run = Signal()                       # loader, sequencer and output stages active
        run_start = Signal()                 # first cycle of RUN
        all_written = Signal()
        phase_params = Signal()
        m.d.sync += run_start.eq(0)
        m.d.comb += setup.start.eq(start)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(start):                # the set-up starts on the same cycle
                    m.next = "SETUP"
            with m.State("SETUP"):
                with m.If(setup.done & (setup.error != 0)):
                    m.d.comb += [regfile.end.eq(1), regfile.end_error.eq(setup.error)]
                    m.next = "IDLE"
                with m.Elif(setup.done):
                    m.d.sync += [init_i.eq(0), init_in.eq(reg["IN_BASE"]), init_out.eq(reg["OUT_BASE"]),
                                 init_last.eq((cb_in <= 1) & (cb_out <= 1)),
                                 pa_issue.eq(0), pa_recv.eq(0), pa_total.eq(K * PW), pa_j.eq(0), pa_k.eq(0)]
                    m.next = "INIT"
            with m.State("INIT"):            # block-pointer tables
                m.d.comb += [loader.init_addr.eq(init_i), loader.init_data.eq(init_in), loader.init_en.eq(init_i < cb_in),
                             writer.init_addr.eq(init_i), writer.init_data.eq(init_out),
                             writer.init_en.eq(init_i < cb_out)]
                m.d.sync += pa_total_m1.eq(pa_total - 1)
                m.d.sync += [init_i.eq(init_i + 1), init_in.eq(init_in + in_stride),
                             init_out.eq(init_out + out_stride),
                             init_last.eq((init_i + 2 >= cb_in) & (init_i + 2 >= cb_out))]
                with m.If(init_last):
                    m.d.sync += phase_params.eq(1)
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                with m.If(pa_done):
                    m.d.sync += [phase_params.eq(0), run.eq(1), run_start.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(all_written):
                    m.d.comb += regfile.end.eq(1)
                    m.d.sync += run.eq(0)
                    m.next = "IDLE"

        # weight addresses leave through a pipeline register (the address sum has the cycle to itself)
        m.submodules.w_slice = w_slice = PipeRegister(32)
        w_req = w_slice.i
        wiring.connect(m, w_slice.o, wiring.flipped(self.w_addr))
        # weight words arrive through a two-place queue: the MAC's pop reaches its read pointer
        # only, and the memory's read queue advances on a flip-flop (its ready)
        m.submodules.w_queue = w_queue = TwoPlaceQueue(8 * P)
        wiring.connect(m, wiring.flipped(self.w_data), w_queue.i)
        w_in = w_queue.o
        # parameter load through the weight port
        w_addr_params = Signal(32)
        # a completed parameter word is written one cycle later from registers (the block RAMs
        # are far from the weight queue); RUN reads the buffer only after the first MACs
        pw_en = Signal()
        m.d.sync += pw_en.eq(0)
        m.d.comb += output.param_w_en.eq(pw_en)
        m.d.comb += w_addr_params.eq(reg["P_BASE"] + pa_issue)
        # the parameter phase ends on a flip-flop, pa_done = (next pa_recv == pa_total), so the state
        # machine's next state holds no 32-bit compare. Both compares are of registers (pa_total_m1 =
        # pa_total - 1 is set in INIT); the word arriving only selects between them. CHECK_END clears
        # pa_recv and sets pa_total, and INIT follows, so pa_done is right from PARAMS's first cycle
        # on.
        m.d.comb += pa_recv_next.eq(pa_recv + (phase_params & w_in.valid))
        m.d.sync += pa_done.eq(Mux(phase_params & w_in.valid, pa_recv == pa_total_m1, pa_recv == pa_total))
        with m.If(phase_params):
            m.d.comb += [w_req.valid.eq(pa_issue < pa_total), w_req.payload.eq(w_addr_params),
                         w_in.ready.eq(1)]
            with m.If(w_req.valid & w_req.ready):
                m.d.sync += pa_issue.eq(pa_issue + 1)
            with m.If(w_in.valid):
                m.d.sync += pa_recv.eq(pa_recv_next)
                m.d.comb += inc.PARAM_BYTES.eq(1)
                word = Signal(8 * P * PW)
                m.d.comb += word.eq(Cat(pa_asm[8 * P:], w_in.payload) if PW > 1 else w_in.payload)
                m.d.sync += pa_asm.eq(word)
                with m.If(pa_j == PW - 1):
                    m.d.sync += [pa_j.eq(0), pa_k.eq(pa_k + 1)]
                    m.d.sync += [pw_en.eq(1), output.param_w_addr.eq(pa_k),
                                 output.param_w_data.bias.eq(word[0:32]), output.param_w_data.mult.eq(word[32:64]),
                                 output.param_w_data.shift.eq(word[64:70])]
                with m.Else():
                    m.d.sync += pa_j.eq(pa_j + 1)
        assert PARAM_BYTES == 12

        # ---- loader (hw/loader.py) -----------------------------------------------------------
        m.d.comb += [loader.desc.eq(regfile.desc), loader.derived.eq(setup.derived), loader.run.eq(run),
                     loader.run_start.eq(run_start),
                     linebuf.w_en.eq(loader.lb_w_en), linebuf.w_addr.eq(loader.lb_w_addr),
                     linebuf.w_data.eq(loader.lb_w_data),
                     inc.FM_BITMAP_BYTES.eq(loader.bitmap_byte), inc.FM_VALUE_BYTES.eq(loader.value_byte)]
        wiring.connect(m, loader.fm_addr, wiring.flipped(self.fm_addr))
        wiring.connect(m, wiring.flipped(self.fm_data), loader.fm_data)

        # ---- sequencer (hw/sequencer.py) -----------------------------------------------------
        m.submodules.sequencer = sequencer = Sequencer(P, linebuf_depth=self.linebuf_depth)
        m.d.comb += [sequencer.desc.eq(regfile.desc), sequencer.derived.eq(setup.derived), sequencer.run.eq(run),
                     sequencer.run_start.eq(run_start), sequencer.rows_loaded.eq(loader.rows_loaded),
                     loader.rows_released.eq(sequencer.rows_released),
                     linebuf.r_addr.eq(sequencer.lb_r_addr), sequencer.lb_r_data.eq(linebuf.r_data)]

        # ---- scanner (hw/scanner.py) ---------------------------------------------------------
        m.submodules.scanner = scanner = Scanner(P, self.fifo_depth)
        wiring.connect(m, sequencer.o, scanner.i)
        m.d.comb += [scanner.desc.eq(regfile.desc), scanner.derived.eq(setup.derived), scanner.run.eq(run),
                     scanner.clear.eq(run_start),
                     scanner.w_addr.ready.eq(w_req.ready),
                     inc.MACS.eq(scanner.macs), inc.VALUES_SKIPPED.eq(scanner.skipped)]
        # the weight port's address stream belongs to the parameter load in PARAMS, to the scanner in RUN
        with m.If(run):
            m.d.comb += [w_req.valid.eq(scanner.w_addr.valid), w_req.payload.eq(scanner.w_addr.payload)]

        # ---- MAC lanes (hw/mac.py) -----------------------------------------------------------
        m.submodules.mac = mac = MACLanes(P)
        wiring.connect(m, scanner.o, mac.i)
        m.d.comb += [mac.depthwise.eq(dw), mac.clear.eq(run_start),
                     mac.w.valid.eq(w_in.valid), mac.w.payload.eq(w_in.payload)]
        # the weight port belongs to the parameter load in PARAMS, to the MAC lanes otherwise
        with m.If(~phase_params):
            m.d.comb += w_in.ready.eq(mac.w.ready)

        # ---- output stage: bias, requantise (hw/output.py) ------------------------------------
        m.d.comb += [output.desc.eq(regfile.desc), output.derived.eq(setup.derived), output.clear.eq(run_start)]
        wiring.connect(m, mac.o, output.i)

        # ---- packer and writer (hw/writer.py) ------------------------------------------------
        m.d.comb += [packer.desc.eq(regfile.desc), packer.derived.eq(setup.derived), packer.clear.eq(run_start),
                     writer.compressed.eq(out_cmp), writer.clear.eq(run_start)]
        wiring.connect(m, output.o, packer.i)
        wiring.connect(m, packer.o, writer.i)
        wiring.connect(m, writer.out, wiring.flipped(self.out))
        m.d.comb += inc.OUT_BYTES.eq(self.out.valid & self.out.ready)

        # the run's end, as a register. pk_done holds from the last run until run_start clears it,
        # so the first cycle of RUN must not look at it (a run started after another would end at
        # once, with nothing written)
        m.d.sync += all_written.eq(packer.done & ~writer.busy & run & ~run_start)

        # ---- counters --------------------------------------------------------------------
        stall_q = Signal()
        m.d.sync += stall_q.eq(0)
        with m.If(status_busy):
            stalled = ((self.fm_addr.valid & ~self.fm_addr.ready) | (self.w_addr.valid & ~self.w_addr.ready) |
                       (self.out.valid & ~self.out.ready) | (mac.i.valid & mac.i.payload.mac & ~w_in.valid & run) |
                       (phase_params & (pa_recv < pa_issue) & ~w_in.valid))
            # counted a cycle later, from a register (the conditions come from every port)
            m.d.sync += stall_q.eq(stalled)
        m.d.comb += [inc.STALL_CYCLES.eq(stall_q), inc.WEIGHT_BYTES.eq(w_in.valid & w_in.ready & run)]
        return m
