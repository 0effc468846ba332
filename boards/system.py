"""The board-independent system every board top-level wraps: the engine, its three on-chip
memories and the UART bridge. The UART co-simulation runs this same design."""

from dataclasses import dataclass

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..hw.engine import Engine
from . import protocol
from .bridge import Bridge
from .memory import BoardMemory
from .uart import UARTRx, UARTTx, check_divisor


@dataclass(frozen=True)
class SystemConfig:
    """What is generated for a board. Sizes are in bytes; `fm_word_bytes` / `out_word_bytes` are the
    physical RAM widths (2 on the UP5K's 16-bit SPRAM); the engine's feature-map port reads beats of
    `fm_beat_bytes` (as wide as the RAM's word: a beat a cycle)."""
    lanes: int
    clk_hz: int
    baud: int
    fm_bytes: int
    w_bytes: int
    out_bytes: int
    linebuf_depth: int
    max_channels: int
    max_blocks: int
    wbuf_words: int = 0                 # the engine's weight buffer, words of P bytes (0: none)
    fm_word_bytes: int = 1
    out_word_bytes: int = 1
    fm_beat_bytes: int = 1              # the engine's feature-map port (a divisor of fm_word_bytes)
    out_beat_bytes: int = 1             # the engine's output port (a divisor of out_word_bytes)
    dw_walk: bool = True                # the engine's depthwise column walk (Engine's dw_walk)
    fm_ways: int = 1                    # the engine's loader ways (Engine's fm_ways): a second way
                                        # pays off when a beat holds more than a record

    @property
    def divisor(self) -> int:
        return check_divisor(round(self.clk_hz / self.baud))

    def info(self) -> dict:
        return dict(magic=protocol.INFO_MAGIC, lanes=self.lanes, fm_bytes=self.fm_bytes, w_bytes=self.w_bytes,
                    out_bytes=self.out_bytes, clk_hz=self.clk_hz, baud=self.baud, linebuf_words=self.linebuf_depth,
                    max_channels=self.max_channels, max_blocks=self.max_blocks, wbuf_words=self.wbuf_words,
                    fm_beat_bytes=self.fm_beat_bytes, out_beat_bytes=self.out_beat_bytes, dw_walk=int(self.dw_walk),
                    fm_ways=self.fm_ways)

    def engine_args(self) -> dict:
        return dict(linebuf_depth=self.linebuf_depth, max_channels=self.max_channels, max_blocks=self.max_blocks,
                    wbuf_words=self.wbuf_words, fm_bytes=self.fm_beat_bytes, out_bytes=self.out_beat_bytes,
                    dw_walk=self.dw_walk, fm_ways=self.fm_ways)


class BoardSystem(wiring.Component):
    """Pins: `rx` / `tx` (UART, idle high), `busy`, `error` (for LEDs)."""
    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)
    error: Out(1)

    def __init__(self, cfg: SystemConfig):
        self.cfg = cfg
        P = cfg.lanes
        if cfg.w_bytes % P:
            raise ValueError(f"weight memory size {cfg.w_bytes} is not a multiple of P={P} bytes")
        self.engine = Engine(P, **cfg.engine_args())
        self.fm = BoardMemory("read", cfg.fm_bytes // cfg.fm_word_bytes, cfg.fm_word_bytes, cfg.fm_beat_bytes)
        self.wm = BoardMemory("read", cfg.w_bytes // P, P, P)
        self.om = BoardMemory("write", cfg.out_bytes // cfg.out_word_bytes, cfg.out_word_bytes, cfg.out_beat_bytes)
        self.bridge = Bridge(info=cfg.info(), mem_sizes=[cfg.fm_bytes, cfg.w_bytes, cfg.out_bytes],
                             idle_timeout=max(16, round(cfg.clk_hz * protocol.IDLE_TIMEOUT_S)))
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.engine = e = self.engine
        m.submodules.fm = self.fm
        m.submodules.wm = self.wm
        m.submodules.om = self.om
        m.submodules.bridge = br = self.bridge
        m.submodules.uart_rx = urx = UARTRx(cfg.divisor)
        m.submodules.uart_tx = utx = UARTTx(cfg.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), br.busy.eq(e.busy),
                     self.busy.eq(e.busy), self.error.eq(e.error)]
        wiring.connect(m, urx.data, br.rx)
        wiring.connect(m, br.tx, utx.data)
        wiring.connect(m, br.csr, e.csr)
        wiring.connect(m, e.fm_addr, self.fm.addr)
        wiring.connect(m, self.fm.data, e.fm_data)
        wiring.connect(m, e.w_addr, self.wm.addr)
        wiring.connect(m, self.wm.data, e.w_data)
        wiring.connect(m, e.out, self.om.req)
        for port, mem in zip(br.mems, (self.fm, self.wm, self.om)):
            # the bridge's address is as wide as the largest memory's; each memory takes its own bits
            m.d.comb += [mem.host.addr.eq(port.addr), mem.host.w_data.eq(port.w_data), mem.host.we.eq(port.we),
                         mem.host.re.eq(port.re), port.r_data.eq(mem.host.r_data)]
        return m
