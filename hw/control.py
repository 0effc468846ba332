"""The engine's control: the phases of a run (set-up, tables, parameters, run) and its end."""
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .ports import Descriptor
from .setup import Derived


class Control(wiring.Component):
    """IDLE -> SETUP -> INIT -> PARAMS -> [FILL ->] RUN -> IDLE.

    The loader starts with PARAMS (``load``): the input's first rows enter the line buffer while
    the parameters and the weights do, over a port of their own.

    START starts the set-up stage on the same cycle it leaves IDLE; a refused descriptor ends the
    run at the set-up's end with its error code. INIT writes the two block-pointer tables, one
    entry a cycle (the input blocks' from IN_BASE, the output blocks' from OUT_BASE, a block
    stride apart); PARAMS lets the parameter loader own the weight port until it is done; FILL (with
    WEIGHT_BUFFER = 1) lets the weight buffer own it until the layer's weights are in; RUN lasts
    until the packer has handed over the layer's last block and the writer has written it. The
    phases are registers set and cleared with the state changes (they fan out widely); the run's
    end is a register too, which ignores RUN's first cycle (the packer's done flag holds from the
    run before until that cycle clears it).

    Parameters
    ----------
    lanes : int
        P.
    max_blocks : int
        The block-pointer tables' depth.

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer (IN_BASE, OUT_BASE; cb_in, cb_out, in_stride, out_stride).
    start : In(1)
        START's pulse (the register block's).
    setup_done, setup_error : In(1), In(8)
        The set-up's end and its error code.
    end, end_error : Out(1), Out(8)
        The run ends (to the register block's STATUS).
    in_init_en, in_init_addr, in_init_data : Out(1), Out(range(max_blocks)), Out(32)
        The input block-pointer table's writes (the loader's).
    out_init_en, out_init_addr, out_init_data : Out(1), Out(range(max_blocks)), Out(32)
        The output block-pointer table's writes (the writer's).
    params_begin, params_prepare, params_active : Out(1), Out(1), Out(1)
        The parameter loader's phases (ParamLoader.begin, .prepare, .active).
    params_done : In(1)
        The parameter loader is done.
    fill_active : Out(1)
        The FILL phase (WeightBuffer.active).
    fill_done : In(1)
        The weight buffer is filled.
    serve : Out(1)
        RUN with WEIGHT_BUFFER = 1: the weight buffer serves the MAC lanes (a register, set and
        cleared with ``run``).
    run, run_start : Out(1), Out(1)
        The run is on; its first cycle.
    load, load_start : Out(1), Out(1)
        The loader's phase, PARAMS to the run's end (the block-pointer tables are written); its
        first cycle.
    out_done, out_busy : In(1), In(1)
        The packer has handed over the last block; the writer is writing one.
    """

    def __init__(self, lanes, max_blocks):
        self.max_blocks = max_blocks
        tables = {f"{t}_init_{n}": Out(s) for t in ("in", "out")
                  for n, s in (("en", 1), ("addr", range(max_blocks)), ("data", 32))}
        super().__init__({"desc": In(Descriptor()), "derived": In(Derived(lanes)), "start": In(1),
                          "setup_done": In(1), "setup_error": In(8), "end": Out(1), "end_error": Out(8),
                          **tables, "params_begin": Out(1), "params_prepare": Out(1), "params_active": Out(1),
                          "params_done": In(1), "fill_active": Out(1), "fill_done": In(1), "serve": Out(1), "run": Out(1), "run_start": Out(1),
                          "load": Out(1), "load_start": Out(1),
                          "out_done": In(1), "out_busy": In(1)})

    def elaborate(self, platform):
        m = Module()
        dv = self.derived
        cb_in, cb_out = dv.cb_in, dv.cb_out
        init_i = Signal(14)
        init_last = Signal()                 # init_i + 1 >= max(cb_in, cb_out), kept in step
        init_in = Signal(40)
        init_out = Signal(40)
        run, run_start, phase_params = self.run, self.run_start, self.params_active
        all_written = Signal()
        m.d.sync += [run_start.eq(0), self.load_start.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):           # the set-up starts on the same cycle
                    m.next = "SETUP"
            with m.State("SETUP"):
                with m.If(self.setup_done & (self.setup_error != 0)):
                    m.d.comb += [self.end.eq(1), self.end_error.eq(self.setup_error)]
                    m.next = "IDLE"
                with m.Elif(self.setup_done):
                    m.d.comb += self.params_begin.eq(1)
                    m.d.sync += [init_i.eq(0), init_in.eq(self.desc.IN_BASE), init_out.eq(self.desc.OUT_BASE),
                                 init_last.eq((cb_in <= 1) & (cb_out <= 1))]
                    m.next = "INIT"
            with m.State("INIT"):            # block-pointer tables
                m.d.comb += [self.in_init_addr.eq(init_i), self.in_init_data.eq(init_in),
                             self.in_init_en.eq(init_i < cb_in),
                             self.out_init_addr.eq(init_i), self.out_init_data.eq(init_out),
                             self.out_init_en.eq(init_i < cb_out), self.params_prepare.eq(1)]
                m.d.sync += [init_i.eq(init_i + 1), init_in.eq(init_in + dv.in_stride),
                             init_out.eq(init_out + dv.out_stride),
                             init_last.eq((init_i + 2 >= cb_in) & (init_i + 2 >= cb_out))]
                with m.If(init_last):
                    m.d.sync += [phase_params.eq(1), self.load.eq(1), self.load_start.eq(1)]
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                with m.If(self.params_done & self.desc.WEIGHT_BUFFER):
                    m.d.sync += [phase_params.eq(0), self.fill_active.eq(1)]
                    m.next = "FILL"
                with m.Elif(self.params_done):
                    m.d.sync += [phase_params.eq(0), run.eq(1), run_start.eq(1)]
                    m.next = "RUN"
            with m.State("FILL"):
                # done is cleared by begin and rises only while active: not before its second cycle
                with m.If(self.fill_done):
                    m.d.sync += [self.fill_active.eq(0), run.eq(1), run_start.eq(1), self.serve.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(all_written):
                    m.d.comb += self.end.eq(1)
                    m.d.sync += [run.eq(0), self.serve.eq(0), self.load.eq(0)]
                    m.next = "IDLE"
        m.d.sync += all_written.eq(self.out_done & ~self.out_busy & run & ~run_start)
        return m
