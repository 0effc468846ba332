from pathlib import Path

from fmprune.sw import regs

DOCS = Path(__file__).parent.parent / "docs"


def test_register_table_in_docs_is_current():
    assert regs.markdown() in (DOCS / "engine.md").read_text(), \
        "docs/engine.md's register table is stale: paste `python -m fmprune.sw.regs`"


def test_serial_protocol_table_in_docs_is_current():
    from fmprune.boards import protocol
    assert protocol.markdown() in (DOCS / "boards.md").read_text(), \
        "docs/boards.md's command table is stale: paste `python -m fmprune.boards.protocol`"
