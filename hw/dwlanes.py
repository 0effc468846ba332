"""Decoupled depthwise lanes: each of P lanes multiplies only its own channel's present taps
(Cnvlutin's decoupled lanes), so a depthwise layer costs about its non-zero MACs / P cycles
instead of a tap a cycle for eight channels together.

A *window* is one output pixel of one channel group: for each of its L lanes (channels) a
``Slice``, the up to nine taps' values and weights and the mask of the taps with an operand. The
P lanes form G = P / L lane groups; window n goes to group n mod G, and each lane keeps its
slices in its own queue, so a lane with few operands runs ahead of one with many. Each lane
issues one present tap a cycle (a slice with none takes one cycle) into its multiplier and
accumulator; a pixel's sum enters the lane's result queue; the sums leave in window order, a
pixel's L sums together, when every lane of its group has it.

A channel's density is much its own (after ReLU some channels are nearly all zero, others
nearly all positive), so a lane that always took the same channels would set the pace for a
whole row of windows. Lane j of a group therefore takes channel (j + m) mod L of the group's
m-th window, and the join turns the sums back: over any L windows every lane of a group walks
every channel once."""
import functools
import operator

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..sw.layout import DW_TAPS, dw_lanes
from .dsp import PipelinedMul
from .queues import credits


class Slice(data.StructLayout):
    """One lane's share of a window: its channel's tap values and weights (tap ky k + kx), and
    the taps that have an operand (|x| > EPS_IN, inside the input; all real taps in dense mode)."""
    def __init__(self):
        super().__init__({"x": data.ArrayLayout(signed(8), DW_TAPS), "w": data.ArrayLayout(signed(8), DW_TAPS),
                          "mask": DW_TAPS})


class DwLanes(wiring.Component):
    """P decoupled depthwise lanes in G = P / L groups of L = min(P, 8).

    Each lane: a queue of ``depth`` slices entered on a credit flag; the slice being walked (its
    remaining taps and "one left" as registers, so each cycle's choice is a priority pick and a
    select); the multiplier (hw/dsp.PipelinedMul: its operand and product registers); the
    accumulator, which pushes the pixel's sum with its last tap into a result queue of
    ``depth`` places. A lane issues a slice's last tap only with a credit for a place there, so
    nothing waits downstream within a cycle. The join takes group n mod G's L sums for window n.

    Parameters
    ----------
    lanes : int
        P.
    depth : int
        Each lane's slice queue and result queue places (at least 3: hw/queues.credits).

    Attributes
    ----------
    clear : In(1)
        The run's first cycle: the window and sum counters restart (the queues are empty between
        runs: a run ends only after its last sum has left).
    i : In(stream.Signature(data.ArrayLayout(Slice(), L)))
        The windows, in order; ``i.ready`` is a register per group (every lane's queue has room).
    o : Out(stream.Signature(data.ArrayLayout(signed(32), L)))
        Each window's L sums (wrapping int32), in window order.
    issued : Out(range(P + 1))
        Lanes that issued a tap in the cycle before (a multiplying one or an empty slice's).
    """

    def __init__(self, lanes, depth=4):
        if depth < 3:
            raise ValueError(f"depth={depth}: the depthwise lanes' queues need at least 3 places")
        self.P, self.L, self.depth = lanes, dw_lanes(lanes), depth
        self.G = lanes // self.L
        super().__init__({"clear": In(1), "i": In(stream.Signature(data.ArrayLayout(Slice(), self.L))),
                          "o": Out(stream.Signature(data.ArrayLayout(signed(32), self.L))),
                          "issued": Out(range(lanes + 1))})

    def elaborate(self, platform):
        m = Module()
        P, L, G, F = self.P, self.L, self.G, self.depth
        T = DW_TAPS
        g_in = Signal(range(G))              # the group the next window goes to
        g_out = Signal(range(G))             # the group the next window's sums come from
        r_in = Signal(range(L))              # the rotation of the next window in: its group's windows mod L
        r_out = Signal(range(L))             # the rotation of the next window out
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        out_take = Signal()
        m.d.comb += out_take.eq(self.o.valid & self.o.ready)
        in_rooms, sums_ready, sums = [], [], []
        issues = []
        # the window rotated: lane j takes channel (j + r_in) mod L
        rot = Signal(data.ArrayLayout(Slice(), L))
        with m.Switch(r_in):
            for r in range(L):
                with m.Case(r):
                    m.d.comb += [rot[j].eq(self.i.payload[(j + r) % L]) for j in range(L)]
        for p in range(P):
            g, j = divmod(p, L)
            sq = SyncFIFOBuffered(width=Slice().size, depth=F)
            rq = SyncFIFOBuffered(width=32, depth=F)
            m.submodules[f"dw_slices{p}"] = sq
            m.submodules[f"dw_sums{p}"] = rq
            push = Signal(name=f"dw_push{p}")
            m.d.comb += [push.eq(take & (g_in == g)), sq.w_en.eq(push), sq.w_data.eq(rot[j])]
            pop = Signal(name=f"dw_pop{p}")
            # free places in the slice queue as a flip-flop (pushes less pops counted, which for a
            # SyncFIFOBuffered of depth >= 3 is its w_rdy: hw/queues.credits)
            in_rooms.append(credits(m, F, f"dw_in{p}", push, pop))

            # the slice being walked: its values and weights, its remaining taps
            c_valid = Signal(name=f"dw_cur{p}")
            c = Signal(Slice(), name=f"dw_slice{p}")
            rem = Signal(T, name=f"dw_rem{p}")
            single = Signal(name=f"dw_single{p}")    # at most one tap left, kept in step with rem
            rest = Signal(T, name=f"dw_rest{p}")
            rest2 = Signal(T, name=f"dw_rest2_{p}")
            lowbit = Signal(T, name=f"dw_low{p}")    # rem's lowest set bit, one-hot
            m.d.comb += [rest.eq(rem & (rem - 1)), rest2.eq(rest & (rest - 1)), lowbit.eq(rem & ~(rem - 1))]
            # a slice's last tap (or an empty slice) issues only with a place for its sum: the
            # sums issued and not yet taken by the join are counted
            claim = Signal(name=f"dw_claim{p}")
            sum_taken = Signal(name=f"dw_taken{p}")
            out_room = credits(m, F, f"dw_out{p}", claim, sum_taken)
            issue = Signal(name=f"dw_issue{p}")
            last = single
            m.d.comb += [issue.eq(c_valid & (~last | out_room)), claim.eq(issue & last)]
            issues.append(issue)

            mul = PipelinedMul()
            m.submodules[f"dw_mult{p}"] = mul
            xs = Signal(signed(8), name=f"dw_x{p}")
            ws = Signal(signed(8), name=f"dw_w{p}")
            # a one-hot select, an AND-OR without a priority chain (an empty slice multiplies 0 by 0)
            m.d.comb += [xs.eq(_any(Mux(lowbit[t], c.x[t], 0) for t in range(T))),
                         ws.eq(_any(Mux(lowbit[t], c.w[t], 0) for t in range(T)))]
            m.d.comb += [mul.a.eq(Mux(issue, xs, 0)), mul.b.eq(ws)]
            m0_valid, m0_last, m1_valid, m1_last = (Signal(name=f"dw_{n}{p}") for n in ("m0v", "m0l", "m1v", "m1l"))
            m.d.sync += [m0_valid.eq(issue), m0_last.eq(issue & last), m1_valid.eq(m0_valid), m1_last.eq(m0_last)]
            acc = Signal(signed(32), name=f"dw_acc{p}")
            total = Signal(signed(32), name=f"dw_total{p}")
            m.d.comb += [total.eq((acc + mul.p)[:32].as_signed()), rq.w_data.eq(total), rq.w_en.eq(m1_valid & m1_last)]
            with m.If(m1_valid):
                m.d.sync += acc.eq(Mux(m1_last, 0, total))
            m.d.comb += [rq.r_en.eq(sum_taken), sum_taken.eq(out_take & (g_out == g))]
            sums_ready.append(rq.r_rdy)
            sums.append(rq.r_data.as_signed())

            # the next slice enters as the last tap issues, or when none is being walked
            m.d.comb += [pop.eq(sq.r_rdy & (~c_valid | (issue & last))), sq.r_en.eq(pop)]
            nxt = Signal(Slice(), name=f"dw_next{p}")
            m.d.comb += nxt.eq(sq.r_data)
            with m.If(pop):
                m.d.sync += [c_valid.eq(1), c.eq(nxt), rem.eq(nxt.mask), single.eq((nxt.mask & (nxt.mask - 1)) == 0)]
            with m.Elif(issue):
                with m.If(last):
                    m.d.sync += c_valid.eq(0)
                with m.Else():
                    m.d.sync += [rem.eq(rest), single.eq(rest2 == 0)]
            with m.If(self.clear):
                m.d.sync += [c_valid.eq(0), m0_valid.eq(0), m1_valid.eq(0), acc.eq(0)]

        # a window enters its group while every lane's slice queue has room (flip-flops)
        room = Signal()
        with m.Switch(g_in):
            for g in range(G):
                with m.Case(g):
                    m.d.comb += room.eq(_all(in_rooms[g * L:(g + 1) * L]))
        m.d.comb += self.i.ready.eq(room)
        # window n's sums leave when every lane of group n mod G has its sum; channel c's is on
        # lane (c - r_out) mod L
        with m.Switch(g_out):
            for g in range(G):
                with m.Case(g):
                    m.d.comb += self.o.valid.eq(_all(sums_ready[g * L:(g + 1) * L]))
                    with m.Switch(r_out):
                        for r in range(L):
                            with m.Case(r):
                                m.d.comb += [self.o.payload[c].eq(sums[g * L + (c - r) % L]) for c in range(L)]
        # the group and the rotation step with each window: the rotation when the group wraps
        with m.If(take):
            m.d.sync += g_in.eq(Mux(g_in == G - 1, 0, g_in + 1))
            with m.If(g_in == G - 1):
                m.d.sync += r_in.eq(Mux(r_in == L - 1, 0, r_in + 1))
        with m.If(out_take):
            m.d.sync += g_out.eq(Mux(g_out == G - 1, 0, g_out + 1))
            with m.If(g_out == G - 1):
                m.d.sync += r_out.eq(Mux(r_out == L - 1, 0, r_out + 1))
        m.d.sync += self.issued.eq(sum(issues))
        with m.If(self.clear):
            m.d.sync += [g_in.eq(0), g_out.eq(0), r_in.eq(0), r_out.eq(0)]
        return m


def _all(bits):
    return functools.reduce(operator.and_, bits)


def _any(values):
    return functools.reduce(operator.or_, values)
