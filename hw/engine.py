"""The fmprune engine: a streaming int8 convolution engine whose front end suppresses the fetch
and the MAC of zero / near-zero activations, as a composition of its stages (docs/engine.md has
the diagram and a section per stage):

    registers -> set-up -> control -> parameter loader
    feature map -> loader -> line buffer -> sequencer -> scanner -> MAC lanes -> output stage
                -> packer -> writer -> output feature map

Ports (all handshakes are lib.stream valid/ready; memory may stall any of them at any cycle):

* ``csr``: word-addressed register block (sw/regs.py);
* ``fm_addr`` / ``fm_data``: feature-map read port, beat addresses (byte address / fm_bytes),
  beats of fm_bytes bytes, in order;
* ``w_addr`` / ``w_data``: weight read port, word addresses, P-byte words, in order;
* ``out``: write port, {beat address (byte address / out_bytes), out_bytes bytes, byte strobes};
* ``busy``, ``error``: for LEDs.
"""
from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..sw.layout import (BLOCK, DEFAULT_FM_BYTES, DEFAULT_FM_WAYS, DEFAULT_OUT_BYTES, DW_K_MAX, check_lanes,
                         check_port_bytes, check_ways, default_wbuf_words)
from .control import Control
from .dwlanes import DwLanes
from .dwwindow import DwWindow
from .linebuf import LineBuffer
from .loader import Loader
from .mac import MACLanes
from .output import OutputStage
from .params import ParamLoader
from .ports import CSRSignature, WriteReq
from .queues import PipeRegister, TwoPlaceQueue
from .regfile import Registers
from .scanner import Scanner
from .sequencer import Sequencer
from .setup import Setup
from .wbuf import WeightBuffer
from .writer import Block, Packer, Writer

DW_QUEUE = 4                          # each depthwise lane's slice and sum queues (hw/dwlanes.py)


class Engine(wiring.Component):
    """The engine, generated for P lanes and its buffer sizes; every layer is run-time
    configuration written to its registers.

    Parameters
    ----------
    lanes : int
        P: MAC lanes (1, 2, 4 or a multiple of 8), the weight word's bytes.
    linebuf_depth : int
        Line-buffer words (one channel block at one pixel each).
    max_channels : int
        Parameter-buffer entries: output channels at most.
    max_blocks : int
        Block-pointer table entries: input and output channel blocks at most.
    fifo_depth : int
        Places in the scanner's item queue (at least 3).
    wbuf_words : int or None
        Weight-buffer words of P bytes (0: no weight buffer; None: sw/layout.py's WBUF_BYTES / P, 256 KiB).
    fm_bytes : int
        Bytes a beat of the feature-map read port: 1, 2, 4, 8 (the default, a 64-bit bus) or 16.
    out_bytes : int
        Bytes a beat of the output write port (1, 2, 4, 8 by default, or 16), with a strobe a byte.
    dw_walk : bool
        With P >= 8: the depthwise column walk, window assembler and decoupled lanes, and the line
        buffer's two copies (the default). Without them depthwise layers take the scanner's path,
        a tap a cycle for eight channels: about half the LUTs at P = 16 (docs/boards.md).
    fm_ways : int
        The loader's segment parsers, each writing its own line-buffer bank: 2 (the default) loads
        two line-buffer words a cycle while the port keeps up (hw/loader.py), 1 one.
    """

    def __init__(self, lanes=16, *, linebuf_depth=8192, max_channels=4096, max_blocks=4096, fifo_depth=8,
                 wbuf_words=None, fm_bytes=DEFAULT_FM_BYTES, out_bytes=DEFAULT_OUT_BYTES, dw_walk=True,
                 fm_ways=DEFAULT_FM_WAYS):
        check_lanes(lanes)
        check_port_bytes("fm_bytes", fm_bytes)
        check_port_bytes("out_bytes", out_bytes)
        self.fm_bytes, self.out_bytes = fm_bytes, out_bytes
        if fifo_depth < 3:
            raise ValueError(f"fifo_depth={fifo_depth}: the MAC item queue needs at least 3 places")
        if wbuf_words is None:
            wbuf_words = default_wbuf_words(lanes)
        if wbuf_words < 0:
            raise ValueError(f"wbuf_words={wbuf_words}: 0 (no weight buffer) or more")
        self.wbuf_words = wbuf_words
        self.P = lanes
        self.linebuf_depth, self.max_channels, self.max_blocks = linebuf_depth, max_channels, max_blocks
        self.fifo_depth = fifo_depth
        self.dw_walk = bool(dw_walk) and lanes >= BLOCK
        check_ways(fm_ways)
        self.fm_ways = fm_ways
        super().__init__({
            "csr": In(CSRSignature()),
            "fm_addr": Out(stream.Signature(32)),
            "fm_data": In(stream.Signature(8 * fm_bytes)),
            "w_addr": Out(stream.Signature(32)),
            "w_data": In(stream.Signature(8 * lanes)),
            "out": Out(stream.Signature(WriteReq(data_bytes=out_bytes))),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P = self.P
        m.submodules.regs = regs = Registers(P, self.wbuf_words, self.fm_bytes, self.out_bytes)
        N = self.fm_ways
        m.submodules.setup = setup = Setup(P, linebuf_depth=self.linebuf_depth, max_channels=self.max_channels,
                                           max_blocks=self.max_blocks, wbuf_words=self.wbuf_words, ways=N)
        m.submodules.control = control = Control(P, self.max_blocks)
        m.submodules.params = params = ParamLoader(P, self.max_channels)
        m.submodules.loader = loader = Loader(P, linebuf_depth=self.linebuf_depth, max_blocks=self.max_blocks,
                                              fm_bytes=self.fm_bytes, ways=N)
        # the line buffer, a bank a way (hw/linebuf.py; its read data is registered, on the ECP5
        # inside the block RAM). With dw_walk (P >= 8) it has two more read ports, each a copy of
        # it written with it, which give the depthwise column walk a column's rows 1 and 2 in the
        # cycle row 0 is read (a column a cycle; the cost is its block RAM three times over)
        m.submodules.linebuf = linebuf = LineBuffer(self.linebuf_depth, ways=N,
                                                    reads=DW_K_MAX if self.dw_walk else 1)
        # the group queue's places: the groups that can be in flight (hw/sequencer.py; with the
        # depthwise column walk also the windows in the assembler's register and in the lanes:
        # hw/dwlanes.py, each lane group's two queues, its slice and its multiplier)
        colwalk = self.dw_walk
        group_depth = self.fifo_depth + 11
        if colwalk:
            m.submodules.dwwindow = dww = DwWindow(P)
            m.submodules.dwlanes = dwl = DwLanes(P, DW_QUEUE)
            group_depth = max(group_depth, 12 + dwl.G * (2 * DW_QUEUE + 3))
        m.submodules.sequencer = sequencer = Sequencer(P, linebuf_depth=linebuf.bank_depth,
                                                       group_depth=group_depth, walk=colwalk, ways=N)
        m.submodules.scanner = scanner = Scanner(P, self.fifo_depth)
        m.submodules.mac = mac = MACLanes(P)
        m.submodules.output = output = OutputStage(P, self.max_channels)
        m.submodules.packer = packer = Packer(P)
        m.submodules.writer = writer = Writer(self.max_blocks, self.out_bytes)
        # the blocks reach the writer through a pipeline register: from the packer's step straight
        # into the writer's stored-lane counts (a popcount of the mask a lane) it was the ULX3S's
        # critical path at fc1e6d6 with seed 1 (9.8 ns, 7.7 of them routes)
        m.submodules.blk_slice = blk_slice = PipeRegister(Block())
        # weight addresses leave through a pipeline register (the address sum has the cycle to
        # itself); weight words arrive through a two-place queue (the MAC's pop reaches its read
        # pointer only, and the memory's read queue advances on a flip-flop, its ready)
        m.submodules.w_slice = w_slice = PipeRegister(32)
        m.submodules.w_queue = w_queue = TwoPlaceQueue(8 * P)

        # the layer: the descriptor's registers and the set-up's derived values, to every stage
        desc, derived = regs.desc, setup.derived
        m.d.comb += setup.desc.eq(desc)
        m.d.comb += params.desc.eq(desc)
        for stage in (control, loader, sequencer, scanner, output, packer) + ((dww,) if colwalk else ()):
            m.d.comb += [stage.desc.eq(desc), stage.derived.eq(derived)]
        run, run_start, phase_params = control.run, control.run_start, control.params_active

        # registers, set-up and control
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        m.d.comb += [
            self.busy.eq(regs.busy), self.error.eq(regs.error),
            setup.start.eq(regs.start), control.start.eq(regs.start),
            control.setup_done.eq(setup.done), control.setup_error.eq(setup.error),
            regs.end.eq(control.end), regs.end_error.eq(control.end_error),
            loader.init_en.eq(control.in_init_en), loader.init_addr.eq(control.in_init_addr),
            loader.init_data.eq(control.in_init_data),
            writer.init_en.eq(control.out_init_en), writer.init_addr.eq(control.out_init_addr),
            writer.init_data.eq(control.out_init_data),
            params.begin.eq(control.params_begin), params.prepare.eq(control.params_prepare),
            params.active.eq(phase_params), control.params_done.eq(params.done),
            output.param_w_en.eq(params.p_w_en), output.param_w_addr.eq(params.p_w_addr),
            output.param_w_data.eq(params.p_w_data),
            # the run ends once the last block is written and no feature-map beat is in flight
            control.out_done.eq(packer.done), control.out_busy.eq(writer.busy | blk_slice.o.valid | loader.busy),
        ]

        # the weight port: the parameter loader's in PARAMS, the weight buffer's in FILL, the
        # scanner's and the MAC lanes' in RUN; with WEIGHT_BUFFER = 1 the run's addresses go to the
        # weight buffer instead (through the same pipeline register) and its words to the MAC lanes
        w_req, w_in = w_slice.i, w_queue.o
        # the run's weight words go to the MAC lanes, or to the depthwise window assembler (column walk)
        walk = sequencer.colwalk             # a register: the layer takes the column walk
        w_take = Signal()
        m.d.comb += w_take.eq(Mux(walk, dww.w.ready, mac.w.ready) if colwalk else mac.w.ready)
        wiring.connect(m, wiring.flipped(self.w_data), w_queue.i)
        serve = control.serve                 # RUN with the weight buffer (a register)
        fill = control.fill_active
        if self.wbuf_words:
            m.submodules.wbuf = wbuf = WeightBuffer(P, self.wbuf_words, self.fifo_depth)
            m.d.comb += [wbuf.desc.eq(desc), wbuf.derived.eq(derived), wbuf.begin.eq(control.params_begin),
                         wbuf.active.eq(fill), control.fill_done.eq(wbuf.done),
                         wbuf.port_addr.ready.eq(w_req.ready),
                         wbuf.port_data.valid.eq(w_in.valid & fill), wbuf.port_data.payload.eq(w_in.payload),
                         wbuf.r_addr.valid.eq(w_slice.o.valid & serve), wbuf.r_addr.payload.eq(w_slice.o.payload),
                         wbuf.r_data.ready.eq(w_take & serve)]
            fill_word, fill_waiting = wbuf.word, wbuf.waiting
        else:
            fill_word = fill_waiting = 0
        m.d.comb += [self.w_addr.valid.eq(w_slice.o.valid & ~serve), self.w_addr.payload.eq(w_slice.o.payload),
                     w_slice.o.ready.eq(Mux(serve, 1, self.w_addr.ready))]
        m.d.comb += [params.w_addr.ready.eq(w_req.ready), scanner.w_addr.ready.eq(w_req.ready),
                     params.w_data.valid.eq(w_in.valid), params.w_data.payload.eq(w_in.payload)]
        run_w_valid = Mux(serve, wbuf.r_data.valid, w_in.valid) if self.wbuf_words else w_in.valid
        run_w_payload = Mux(serve, wbuf.r_data.payload, w_in.payload) if self.wbuf_words else w_in.payload
        m.d.comb += [mac.w.valid.eq(run_w_valid), mac.w.payload.eq(run_w_payload)]
        if colwalk:
            m.d.comb += [dww.w.valid.eq(run_w_valid & walk), dww.w.payload.eq(run_w_payload),
                         mac.w.valid.eq(run_w_valid & ~walk), dww.w_addr.ready.eq(w_req.ready)]
        with m.If(phase_params):
            m.d.comb += [w_req.valid.eq(params.w_addr.valid), w_req.payload.eq(params.w_addr.payload),
                         w_in.ready.eq(params.w_data.ready)]
        if self.wbuf_words:
            with m.Elif(fill):
                m.d.comb += [w_req.valid.eq(wbuf.port_addr.valid), w_req.payload.eq(wbuf.port_addr.payload),
                             w_in.ready.eq(1)]
        with m.Else():
            m.d.comb += w_in.ready.eq(w_take & ~serve)
        with m.If(run):
            m.d.comb += [w_req.valid.eq(scanner.w_addr.valid), w_req.payload.eq(scanner.w_addr.payload)]
            if colwalk:
                with m.If(walk):
                    m.d.comb += [w_req.valid.eq(dww.w_addr.valid), w_req.payload.eq(dww.w_addr.payload)]

        # the dataflow
        m.d.comb += [loader.load.eq(control.load), loader.load_start.eq(control.load_start),
                     loader.seq_start.eq(run_start),
                     linebuf.w_en.eq(loader.lb_w_en), linebuf.w_addr.eq(loader.lb_w_addr),
                     linebuf.w_data.eq(loader.lb_w_data),
                     linebuf.r_bank[0].eq(sequencer.lb_r_bank),
                     sequencer.run.eq(run), sequencer.run_start.eq(run_start),
                     sequencer.rows_loaded.eq(loader.rows_loaded), loader.rows_released.eq(sequencer.rows_released),
                     linebuf.r_addr[0].eq(sequencer.lb_r_addr), sequencer.lb_r_data.eq(linebuf.r_data[0]),
                     scanner.run.eq(run), scanner.clear.eq(run_start),
                     mac.depthwise.eq(desc.DEPTHWISE), mac.clear.eq(run_start),
                     output.clear.eq(run_start), packer.clear.eq(run_start),
                     writer.compressed.eq(desc.OUT_LAYOUT), writer.clear.eq(run_start)]
        if self.dw_walk:
            for r in range(1, DW_K_MAX):
                m.d.comb += [linebuf.r_addr[r].eq(sequencer.lb_r_addr_dw[r - 1]), linebuf.r_bank[r].eq(sequencer.lb_r_bank),
                             sequencer.lb_r_data_dw[r - 1].eq(linebuf.r_data[r])]
        wiring.connect(m, loader.fm_addr, wiring.flipped(self.fm_addr))
        wiring.connect(m, wiring.flipped(self.fm_data), loader.fm_data)
        wiring.connect(m, scanner.o, mac.i)
        if colwalk:
            # the column walk's positions go to the window assembler, its windows to the
            # decoupled lanes, whose sums (lanes 0..7) go to the output stage
            seq_o = sequencer.o
            m.d.comb += [scanner.i.payload.eq(seq_o.payload), dww.i.payload.eq(seq_o.payload),
                         scanner.i.valid.eq(seq_o.valid & ~walk), dww.i.valid.eq(seq_o.valid & walk),
                         seq_o.ready.eq(Mux(walk, dww.i.ready, scanner.i.ready))]
            wiring.connect(m, dww.o, dwl.i)
            m.d.comb += [dwl.clear.eq(run_start), dww.clear.eq(run_start),
                         output.i.valid.eq(Mux(walk, dwl.o.valid, mac.o.valid)),
                         mac.o.ready.eq(output.i.ready & ~walk), dwl.o.ready.eq(output.i.ready & walk)]
            with m.If(walk):
                m.d.comb += [output.i.payload[p].eq(dwl.o.payload[p] if p < BLOCK else 0) for p in range(P)]
            with m.Else():
                m.d.comb += output.i.payload.eq(mac.o.payload)
        else:
            wiring.connect(m, sequencer.o, scanner.i)
            wiring.connect(m, mac.o, output.i)
        wiring.connect(m, sequencer.groups, output.groups)
        wiring.connect(m, output.blocks, packer.meta)
        wiring.connect(m, output.o, packer.i)
        wiring.connect(m, packer.o, blk_slice.i)
        wiring.connect(m, blk_slice.o, writer.i)
        wiring.connect(m, writer.out, wiring.flipped(self.out))

        # the counters' increments
        inc = regs.inc
        stall_q = Signal()
        w_word_q = Signal()                  # a weight word taken, counted a cycle later (the MAC's pop is late)
        m.d.sync += [stall_q.eq(0), w_word_q.eq((w_in.valid & w_in.ready & run & ~serve) | fill_word)]
        with m.If(regs.busy):
            stalled = ((self.fm_addr.valid & ~self.fm_addr.ready) | (self.w_addr.valid & ~self.w_addr.ready) |
                       (self.out.valid & ~self.out.ready) |
                       (mac.i.valid & mac.i.payload.mac & ~w_in.valid & run & ~serve) |
                       ((dww.w_wait & ~dww.w_addr.valid & ~w_in.valid & run & ~serve & walk) if colwalk else 0) |
                       (phase_params & params.waiting & ~w_in.valid) | (fill & fill_waiting & ~w_in.valid))
            # counted a cycle later, from a register (the conditions come from every port)
            m.d.sync += stall_q.eq(stalled)
        m.d.comb += [inc.FM_BITMAP_BYTES.eq(loader.bitmap_byte), inc.FM_VALUE_BYTES.eq(loader.value_bytes),
                     inc.FM_PORT_BYTES.eq(Mux(loader.port_beat, self.fm_bytes, 0)),
                     inc.MACS.eq(scanner.macs + (dww.macs if colwalk else 0)),
                     inc.VALUES_SKIPPED.eq(scanner.skipped + (dww.skipped if colwalk else 0)),
                     inc.PARAM_BYTES.eq(params.word), inc.OUT_BYTES.eq(writer.bytes_written),
                     inc.WEIGHT_BYTES.eq(w_word_q), inc.STALL_CYCLES.eq(stall_q)]
        return m
