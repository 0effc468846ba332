"""sim/runner.py's build cache: keyed on the generated Verilog itself, so an edit to any file the
engine is made of (hw/dsp.py and hw/ram.py among them, which the old key missed) makes a new build."""
from amaranth import Signal

from fmprune.hw import dsp
from fmprune.sim import runner

CFG = runner.SimConfig(lanes=1, linebuf_depth=256, max_channels=16, max_blocks=8)


def test_build_key_follows_the_generated_verilog(monkeypatch):
    runner.engine_text.cache_clear()
    before = runner._hw_hash(CFG)
    assert runner._hw_hash(CFG) == before                       # stable
    elaborate = dsp.PipelinedMul.elaborate

    def changed(self, platform):                                # an edit in hw/dsp.py: one more flip-flop
        m = elaborate(self, platform)
        extra = Signal(name="edited")
        m.d.sync += extra.eq(~extra)
        return m
    monkeypatch.setattr(dsp.PipelinedMul, "elaborate", changed)
    runner.engine_text.cache_clear()
    try:
        assert runner._hw_hash(CFG) != before, "an edit in hw/dsp.py kept the old build"
    finally:
        monkeypatch.undo()
        runner.engine_text.cache_clear()
    assert runner._hw_hash(CFG) == before
