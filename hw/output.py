"""The output stage: a pixel-group's P accumulators, min(P, 8) lanes a cycle, with their channels'
bias, multiplier and shift, through as many requantisers (hw/requant.py) into a queue for the
packer."""
from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..sw.layout import BLOCK, requant_lanes
from .ports import Descriptor
from .queues import credits
from .ram import RegisteredRAM
from .requant import Requantizer
from .sequencer import Group
from .setup import Derived
from .writer import BlockMeta


class Params(data.StructLayout):
    """One output channel's parameters in the parameter buffer (sw/layout.py's parameter words)."""
    def __init__(self):
        super().__init__({"bias": signed(32), "mult": signed(32), "shift": signed(6)})


class OutputStage(wiring.Component):
    """Requantises each pixel-group's accumulators, R = min(P, 8) lanes a cycle (a channel block
    a cycle from P = 8 on), in channel order.

    The parameter buffer is R banks (channel mod R), so that one read gives the R channels of a
    step. O1 reads a step's parameters; O2 is the block RAMs' read, O3 their output registers and
    O4 a second register, which presents them to R requantisers (in lockstep) with the step's sums
    (carried along). The requantisers never stall: their results go into a queue for the packer,
    and O1 issues only with a credit for a place in that queue, so no back-pressure runs from the
    packer through the requantisers into this stage within a cycle. The queue has a place for each
    step in flight between a claim and its credit's return (O2, O3, O4, the requantiser's stages,
    the queue's own cycles, the claim counted a cycle late from O2's valid), so that credits never
    run out while the packer keeps up: LATENCY + 6 places are the fewest that give a step every
    cycle (tests/test_output_stage.py's unstalled cases find gaps with LATENCY + 5); it has one
    more (20 at LATENCY 13).

    It keeps no loop counters: each group's first channel and pixel come with it, as the
    sequencer's ``Group`` record (taken with the group's accumulators), and each block's record goes
    on to the packer (``BlockMeta``: its channel block, pixel offset and whether it is the layer's
    last), issued with the block's first step.

    Parameters
    ----------
    lanes : int
        P.
    max_channels : int
        The parameter buffer's depth: output channels at most.

    Attributes
    ----------
    desc : In(Descriptor()), derived : In(Derived(lanes))
        The layer (OUT_K, CLAMP_LO / HI, EPS_OUT; n_lanes, neg_eps_out).
    clear : In(1)
        The run's first cycle.
    param_w_en, param_w_addr, param_w_data : In(1), In(range(max_channels)), In(Params())
        A write to the parameter buffer (the parameter loader's).
    i : In(stream.Signature(data.ArrayLayout(signed(32), lanes)))
        A pixel-group's accumulators; ``i.ready``: no group in progress or its last step issuing
        (both from registers), and its ``Group`` record there.
    groups : In(stream.Signature(Group()))
        The groups' records, one taken with each group's accumulators.
    o : Out(stream.Signature(data.ArrayLayout(9, R)))
        Steps of R requantised values (bits 0-7 each) with their "|y| > EPS_OUT" flag (bit 8),
        in channel order; lanes past OUT_K are 0.
    blocks : Out(stream.Signature(BlockMeta()))
        A record per block of eight values on ``o``, ahead of its values.
    """

    def __init__(self, lanes, max_channels):
        self.P, self.R = lanes, requant_lanes(lanes)
        self.max_channels = max_channels
        super().__init__({
            "desc": In(Descriptor()), "derived": In(Derived(lanes)), "clear": In(1),
            "param_w_en": In(1), "param_w_addr": In(range(max_channels)), "param_w_data": In(Params()),
            "i": In(stream.Signature(data.ArrayLayout(signed(32), lanes))), "groups": In(stream.Signature(Group())),
            "o": Out(stream.Signature(data.ArrayLayout(9, self.R))), "blocks": Out(stream.Signature(BlockMeta())),
        })

    def elaborate(self, platform):
        m = Module()
        P, R = self.P, self.R
        rb = R.bit_length() - 1              # R is a power of two
        d, dv = self.desc, self.derived
        K, n_lanes = d.OUT_K, dv.n_lanes

        # read data registered (hw/ram.py). Bank j holds the channels j mod R (a group's steps
        # start at a multiple of R). With R banks each is shallow (max_channels / R: 128 on the
        # ULX3S, 512 by default), so on the ECP5 each is two block RAMs in the 512 x 36 mode with
        # their output registers (the ULX3S's 1,024 channels in 16 block RAMs). Left to Yosys's
        # mapping, without the output register, the register in the fabric took the block RAM's
        # 5.8 ns clock-to-output and the route to it: the ULX3S's critical path at 83da099 (11.2
        # ns, 5 ns of it the route) and, with O4's register after it, at 6b87aba (10.3 ns: the
        # placer left the register 47 columns from the block RAM). O4 registers the data once
        # more, so that the route from the block RAM has a cycle to itself
        banks = []
        for j in range(R):
            bank = RegisteredRAM(Params(), -(-self.max_channels // R))
            m.submodules[f"params{j}"] = bank
            m.d.comb += [bank.w_en.eq(self.param_w_en & (self.param_w_addr[:rb] == j) if R > 1 else self.param_w_en),
                         bank.w_addr.eq(self.param_w_addr >> rb), bank.w_data.eq(self.param_w_data)]
            banks.append(bank)

        # the step walk: oz1, the group's last step, as a register made from the flag's next value
        o_step_last = Signal()               # o_lane + R == n_lanes
        step_next = Signal()
        m.d.comb += step_next.eq(o_step_last)
        m.d.sync += o_step_last.eq(step_next)
        oz1 = Signal()
        m.d.sync += oz1.eq(step_next)
        steps_one = Signal()                 # n_lanes == R, registered from the descriptor
        m.d.sync += steps_one.eq(n_lanes == R)
        o_ch = Signal(16)                    # the step's first channel: the group's k0 + o_lane
        o_busy = Signal()
        o_lane = Signal(range(P + 1))        # the step's first lane (a multiple of R)
        o_acc = [Signal(signed(32), name=f"oacc{p}") for p in range(P)]
        o_pix = Signal(32)                   # the group's pixel and its "last pixel" flag (Group)
        o_lastpix = Signal()
        take = Signal()
        o_adv = Signal()
        # a group is taken while none is in progress or as the last step of the one there issues
        # (o_adv is a credit register, oz1 a register): groups follow back to back
        m.d.comb += [self.i.ready.eq((~o_busy | (o_adv & oz1)) & self.groups.valid), take.eq(self.i.valid & self.i.ready),
                     self.groups.ready.eq(take)]
        with m.If(take):
            g = self.groups.payload
            m.d.sync += [o_busy.eq(1), o_lane.eq(0), o_ch.eq(g.k0), o_pix.eq(g.pix), o_lastpix.eq(g.lastpix)]
            m.d.comb += step_next.eq(steps_one)
            for p in range(P):
                m.d.sync += o_acc[p].eq(self.i.payload[p])

        rqs = []
        for j in range(R):
            rq = Requantizer()
            m.submodules[f"rq{j}"] = rq
            m.d.comb += [rq.lo.eq(d.CLAMP_LO.as_signed()), rq.hi.eq(d.CLAMP_HI.as_signed()), rq.o.ready.eq(1)]
            rqs.append(rq)
        RQ_QUEUE = Requantizer.LATENCY + 7
        # each queued value carries its |y| > EPS_OUT flag (bit 8), decided before the queue
        m.submodules.rq_queue = rq_queue = SyncFIFOBuffered(width=9 * R, depth=RQ_QUEUE)
        m.d.comb += [self.o.valid.eq(rq_queue.r_rdy), self.o.payload.eq(rq_queue.r_data),
                     rq_queue.r_en.eq(self.o.valid & self.o.ready)]
        o2_valid = Signal()
        o2_acc = [Signal(signed(32), name=f"o2_acc{j}") for j in range(R)]
        o2_real = Signal(R)
        o3_valid = Signal()
        o3_acc = [Signal(signed(32), name=f"o3_acc{j}") for j in range(R)]
        o3_real = Signal(R)
        o4_valid = Signal()
        o4_acc = [Signal(signed(32), name=f"o4_acc{j}") for j in range(R)]
        o4_real = Signal(R)
        o4_par = [Signal(Params(), name=f"o4_par{j}") for j in range(R)]
        m.d.comb += [o_adv.eq(credits(m, RQ_QUEUE, "rq", o2_valid, rq_queue.r_en & rq_queue.r_rdy, late=True)),
                     rq_queue.w_en.eq(rqs[0].o.valid),
                     rq_queue.w_data.eq(Cat(Cat(rq.o.payload, (rq.o.payload > d.EPS_OUT) | (rq.o.payload < dv.neg_eps_out))
                                            for rq in rqs))]
        m.d.comb += [bank.r_addr.eq(o_ch >> rb) for bank in banks]
        m.d.sync += [o2_valid.eq(o_adv & o_busy), o3_valid.eq(o2_valid), o3_real.eq(o2_real)]
        m.d.sync += [o3_acc[j].eq(o2_acc[j]) for j in range(R)]
        m.d.sync += [o4_valid.eq(o3_valid), o4_real.eq(o3_real)]
        m.d.sync += [o4_acc[j].eq(o3_acc[j]) for j in range(R)]
        m.d.sync += [o4_par[j].eq(banks[j].r_data) for j in range(R)]
        step_acc = [Signal(signed(32), name=f"step_acc{j}") for j in range(R)]
        with m.Switch(o_lane >> rb):
            for s in range(P // R):
                with m.Case(s):
                    m.d.comb += [step_acc[j].eq(o_acc[s * R + j]) for j in range(R)]
        with m.If(o_adv):
            m.d.sync += [o2_acc[j].eq(step_acc[j]) for j in range(R)]
            m.d.sync += o2_real.eq(Cat(o_ch + j < K for j in range(R)))
            with m.If(o_busy):
                with m.If(~oz1):             # the next step, or the group is done
                    m.d.sync += [o_lane.eq(o_lane + R), o_ch.eq(o_ch + R)]
                    m.d.comb += step_next.eq(o_lane + 2 * R == n_lanes)
                with m.Elif(~take):
                    m.d.sync += o_busy.eq(0)
        # a block's record for the packer as its first step issues (channels 8 cb .. 8 cb + 7 follow
        # in order, from this group and, with fewer than 8 lanes, the next ones). Its queue needs no
        # credits: the steps between here and the packer (the requantiser queue's places, counted
        # by the credits, and the packer's part-filled block) hold at most
        # ceil(RQ_QUEUE / steps a block) + 1 blocks' starts
        BQ = -(-RQ_QUEUE // (BLOCK // R)) + 2
        m.submodules.bq = bq = SyncFIFOBuffered(width=BlockMeta().size, depth=BQ)
        rec = Signal(BlockMeta())
        m.d.comb += [rec.cb.eq(o_ch[3:]), rec.off.eq(o_pix << 3), rec.last.eq(o_lastpix & (o_lane + BLOCK >= n_lanes)),
                     bq.w_data.eq(rec), bq.w_en.eq(o_adv & o_busy & (o_ch[:3] == 0)),
                     self.blocks.valid.eq(bq.r_rdy), self.blocks.payload.eq(bq.r_data),
                     bq.r_en.eq(self.blocks.valid & self.blocks.ready)]
        for j, (rq, par) in enumerate(zip(rqs, o4_par)):
            m.d.comb += [
                rq.i.valid.eq(o4_valid),
                # the parameters go from O4's register into the requantiser's input register; a
                # lane past K is zeroed there
                rq.i.payload.acc.eq(o4_acc[j]),
                rq.i.payload.bias.eq(par.bias),
                rq.i.payload.multiplier.eq(par.mult),
                rq.i.payload.shift.eq(par.shift),
                rq.i.payload.zero.eq(~o4_real[j]),
            ]
        with m.If(self.clear):
            m.d.sync += [o_busy.eq(0), o2_valid.eq(0), o3_valid.eq(0), o4_valid.eq(0)]
        return m
