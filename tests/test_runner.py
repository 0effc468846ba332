"""sim/runner.py's build cache: keyed on the generated Verilog itself, so an edit to any file the
engine is made of (hw/dsp.py and hw/ram.py among them, which the old key missed) makes a new build;
and its lock, so that processes needing the same build make it once."""
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


def _build_and_stat(build_root):
    bdir, _ = runner.build(runner.SimConfig(**{**CFG.__dict__, "simulator": "icarus"}), build_root)
    st = (bdir / ".built").stat()
    return str(bdir), st.st_ino, st.st_mtime_ns


def test_two_processes_needing_one_build_make_it_once(tmp_path):
    """Two processes (as two pytest workers or sweep tasks) asking for the same configuration at
    once: one builds while the other waits on the folder's lock, then both use that one build (a
    second build would have deleted the folder and written a new stamp)."""
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build_and_stat, [tmp_path, tmp_path])
    assert results[0] == results[1], results
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
