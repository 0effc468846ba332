from fmprune.hw.verilog import generate, lint

PORTS = {"clk", "rst", "csr__addr", "csr__w_data", "csr__w_stb", "csr__r_data", "fm_addr__valid", "fm_addr__ready",
         "fm_addr__payload", "fm_data__valid", "fm_data__ready", "fm_data__payload", "w_addr__valid",
         "w_addr__ready", "w_addr__payload", "w_data__valid", "w_data__ready", "w_data__payload", "out__valid",
         "out__ready", "out__payload", "busy", "error"}


def test_verilog_ports_and_lint(tmp_path):
    path, ports = generate(4, tmp_path, linebuf_depth=256, max_channels=64, max_blocks=16, fm_bytes=2, out_bytes=4)
    by_name = {name: (direction, width) for direction, width, name, _ in ports}
    assert set(by_name) == PORTS
    assert by_name["w_data__payload"] == ("input", 32)            # P = 4 lanes of 8 bits
    assert by_name["fm_data__payload"] == ("input", 16)           # beats of 2 bytes
    assert by_name["out__payload"] == ("output", 32 + 4 * 9)      # address, 4 bytes, 4 strobes
    assert all(doc for *_, doc in ports)
    text = path.read_text()
    assert "$display" not in text and "$finish" not in text and "$readmem" not in text
    assert lint(path) == []
