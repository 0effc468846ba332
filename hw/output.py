"""The output stage: a pixel-group's P accumulators, lane by lane, with their channel's bias,
multiplier and shift, through the requantiser (hw/requant.py) into a queue for the packer."""
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, dw_lanes
from .arith import near
from .ports import Descriptor
from .queues import credits
from .ram import RegisteredRAM
from .requant import Requantizer
from .setup import Derived


class Params(data.StructLayout):
    """One output channel's parameters in the parameter buffer (sw/layout.py's parameter words)."""
    def __init__(self):
        super().__init__({"bias": signed(32), "mult": signed(32), "shift": signed(6)})


class OutputStage(wiring.Component):
    """Requantises each pixel-group's accumulators, one lane a cycle, in channel order.

    O1 reads the lane's parameters from the parameter buffer; O2 is the block RAM's read, O3 its
    output register, which presents them to the requantiser with the lane's sum (carried along).
    The requantiser never stalls: its results go into a queue for the packer, and O1 issues only
    with a credit for a place in that queue, so no back-pressure runs from the packer through the
    requantiser into this stage within a cycle. The queue's places: O2, O3, the requantiser's
    stages, the queue's own two cycles, the credit's return and the claim counted a cycle late
    (O2's valid), so that credits never run out while the packer keeps up (20 at LATENCY 13).

    The stage keeps its own counters of the groups' order (sg, ox, bg), as in the sequencer:
    the nest's levels are registers (oz[1] the group's last lane, oz[2] also sg, oz[3] also ox,
    oz[4] also bg), made from the flags' next values.

    Parameters
    ----------
    lanes : int
        P.
    max_channels : int
        The parameter buffer's depth: output channels at most.

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer (OUT_K, OUT_W, DEPTHWISE, CLAMP_LO / HI, EPS_OUT; n_lanes, n_sg, n_bg,
        neg_eps_out).
    clear : In(1)
        The run's first cycle.
    param_w_en, param_w_addr, param_w_data : In(1), In(range(max_channels)), In(Params())
        A write to the parameter buffer (the parameter loader's).
    i : In(stream.Signature(data.ArrayLayout(signed(32), lanes)))
        A pixel-group's accumulators; ``i.ready`` is a register (no group in progress).
    o : Out(stream.Signature(9))
        Requantised values (bits 0-7) with their "|y| > EPS_OUT" flag (bit 8), in channel order;
        lanes past OUT_K are 0.
    """

    def __init__(self, lanes, max_channels):
        self.P, self.D, self.Q = lanes, dw_lanes(lanes), max(lanes, BLOCK)
        self.max_channels = max_channels
        super().__init__({
            "desc": In(Descriptor()), "derived": In(Derived(lanes)), "clear": In(1),
            "param_w_en": In(1), "param_w_addr": In(range(max_channels)), "param_w_data": In(Params()),
            "i": In(stream.Signature(data.ArrayLayout(signed(32), lanes))), "o": Out(stream.Signature(9)),
        })

    def elaborate(self, platform):
        m = Module()
        P, D, Q = self.P, self.D, self.Q
        d, dv = self.desc, self.derived
        dw, K, Wo = d.DEPTHWISE, d.OUT_K, d.OUT_W
        n_lanes, n_sg, n_bg = dv.n_lanes, dv.n_sg, dv.n_bg

        # read data registered (hw/ram.py): on the ECP5 the block RAM's slow clock-to-output stays
        # inside it, which the requantiser's input register would otherwise meet across the die
        m.submodules.params = params = RegisteredRAM(Params(), self.max_channels)
        m.d.comb += [params.w_en.eq(self.param_w_en), params.w_addr.eq(self.param_w_addr),
                     params.w_data.eq(self.param_w_data)]

        o_bg = Signal(16)
        o_ox = Signal(16)
        o_sg = Signal(4)
        o_sg_last = Signal()                 # o_sg + 1 >= n_sg, and so on, kept in step
        o_ox_last = Signal()
        o_bg_last = Signal()
        o_lane_last = Signal()               # o_lane + 1 == n_lanes
        o_flags = dict(lane=o_lane_last, sg=o_sg_last, ox=o_ox_last, bg=o_bg_last)
        o_nxt = {n: Signal(name=f"o_{n}_next") for n in o_flags}
        m.d.comb += [o_nxt[n].eq(f) for n, f in o_flags.items()]
        m.d.sync += [f.eq(o_nxt[n]) for n, f in o_flags.items()]
        oz = [Const(1)] + [Signal(name=f"o_z{i}") for i in range(1, 5)]
        ozn = [Const(1)] + [Signal(name=f"o_z{i}_next") for i in range(1, 5)]
        m.d.comb += [ozn[1].eq(o_nxt["lane"])] + [ozn[i].eq(ozn[i - 1] & o_nxt[n])
                                                  for i, n in ((2, "sg"), (3, "ox"), (4, "bg"))]
        m.d.sync += [oz[i].eq(ozn[i]) for i in range(1, 5)]
        # each loop's restart value of its "last" flag (one trip), registered from the descriptor
        lanes_one, sg_one, ox_one, bg_one = (Signal(name=f"o_{n}_one") for n in ("lanes", "sg", "ox", "bg"))
        m.d.sync += [lanes_one.eq(n_lanes == 1), sg_one.eq(n_sg <= 1), ox_one.eq(Wo <= 1), bg_one.eq(n_bg <= 1)]
        o_ox_near, o_ox_near_step, o_ox_near_restart = near(m, "o_ox", o_ox, Wo)
        o_bg_near, o_bg_near_step, o_bg_near_restart = near(m, "o_bg", o_bg, n_bg)
        o_ch = Signal(16)                    # o_k0 + o_lane: the channel whose parameters are read
        o_busy = Signal()
        o_lane = Signal(range(P + 1))
        o_acc = [Signal(signed(32), name=f"oacc{p}") for p in range(P)]
        o_k0 = Signal(16)                    # the group's first channel (dw: 8 o_bg + D o_sg; else Q o_bg + P o_sg)
        o_bg_k0 = Signal(16)                 # the block group's first channel
        m.d.comb += self.i.ready.eq(~o_busy)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [o_busy.eq(1), o_lane.eq(0), o_ch.eq(o_k0)]
            m.d.comb += o_nxt["lane"].eq(lanes_one)
            for p in range(P):
                m.d.sync += o_acc[p].eq(self.i.payload[p])

        m.submodules.rq = rq = Requantizer()
        m.d.comb += [rq.lo.eq(d.CLAMP_LO.as_signed()), rq.hi.eq(d.CLAMP_HI.as_signed())]
        RQ_QUEUE = Requantizer.LATENCY + 7
        # each queued value carries its |y| > EPS_OUT flag (bit 8), decided before the queue
        m.submodules.rq_queue = rq_queue = SyncFIFOBuffered(width=9, depth=RQ_QUEUE)
        m.d.comb += [self.o.valid.eq(rq_queue.r_rdy), self.o.payload.eq(rq_queue.r_data),
                     rq_queue.r_en.eq(self.o.valid & self.o.ready)]
        o2_valid = Signal()
        o2_acc = Signal(signed(32))
        o2_real = Signal()
        o3_valid = Signal()
        o3_acc = Signal(signed(32))
        o3_real = Signal()
        o_adv = Signal()
        m.d.comb += [o_adv.eq(credits(m, RQ_QUEUE, "rq", o2_valid, rq_queue.r_en & rq_queue.r_rdy, late=True)),
                     params.r_addr.eq(o_ch),
                     rq.o.ready.eq(1), rq_queue.w_en.eq(rq.o.valid),
                     rq_queue.w_data.eq(Cat(rq.o.payload, (rq.o.payload > d.EPS_OUT) | (rq.o.payload < dv.neg_eps_out)))]
        m.d.sync += [o2_valid.eq(o_adv & o_busy), o3_valid.eq(o2_valid), o3_acc.eq(o2_acc), o3_real.eq(o2_real)]
        o_acc_lane = Signal(signed(32))
        with m.Switch(o_lane):
            for p in range(P):
                with m.Case(p):
                    m.d.comb += o_acc_lane.eq(o_acc[p])
        with m.If(o_adv):
            m.d.sync += [o2_acc.eq(o_acc_lane), o2_real.eq(o_ch < K)]
            with m.If(o_busy):
                # the next lane; after the last, the next group in the sequencer's order: sg, ox,
                # bg (then the next row). Level n steps when oz[n-1] and not oz[n]
                with m.If(~oz[1]):
                    m.d.sync += [o_lane.eq(o_lane + 1), o_ch.eq(o_ch + 1)]
                    m.d.comb += o_nxt["lane"].eq(o_lane + 2 == n_lanes)
                with m.Else():
                    m.d.sync += o_busy.eq(0)
                with m.If(oz[1] & ~oz[2]):
                    m.d.sync += [o_sg.eq(o_sg + 1), o_k0.eq(o_k0 + Mux(dw, D, P))]
                    m.d.comb += o_nxt["sg"].eq(o_sg + 2 >= n_sg)
                with m.If(oz[2]):
                    m.d.sync += [o_sg.eq(0), o_k0.eq(o_bg_k0)]
                    m.d.comb += o_nxt["sg"].eq(sg_one)
                with m.If(oz[2] & ~oz[3]):
                    m.d.sync += [o_ox.eq(o_ox + 1), o_ox_near_step]
                    m.d.comb += o_nxt["ox"].eq(o_ox_near)
                with m.If(oz[3]):
                    m.d.sync += [o_ox.eq(0), o_ox_near_restart]
                    m.d.comb += o_nxt["ox"].eq(ox_one)
                with m.If(oz[3] & ~oz[4]):
                    step = Mux(dw, BLOCK, Q)
                    m.d.sync += [o_bg.eq(o_bg + 1), o_bg_k0.eq(o_bg_k0 + step), o_k0.eq(o_bg_k0 + step),
                                 o_bg_near_step]
                    m.d.comb += o_nxt["bg"].eq(o_bg_near)
                with m.If(oz[4]):
                    m.d.sync += [o_bg.eq(0), o_bg_k0.eq(0), o_k0.eq(0), o_bg_near_restart]
                    m.d.comb += o_nxt["bg"].eq(bg_one)
        m.d.comb += [
            rq.i.valid.eq(o3_valid),
            # the parameters go straight from the block RAM's output register into the
            # requantiser's input register; a lane past K is zeroed there
            rq.i.payload.acc.eq(o3_acc),
            rq.i.payload.bias.eq(params.r_data.bias),
            rq.i.payload.multiplier.eq(params.r_data.mult),
            rq.i.payload.shift.eq(params.r_data.shift),
            rq.i.payload.zero.eq(~o3_real),
        ]
        with m.If(self.clear):
            m.d.sync += [o_bg.eq(0), o_ox.eq(0), o_sg.eq(0), o_busy.eq(0), o2_valid.eq(0), o3_valid.eq(0),
                         o_ox_near_restart, o_bg_near_restart, o_k0.eq(0), o_bg_k0.eq(0)]
            m.d.comb += [o_nxt["sg"].eq(sg_one), o_nxt["ox"].eq(ox_one), o_nxt["bg"].eq(bg_one)]
        return m
