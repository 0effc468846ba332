`timescale 1ns/1ps
// The simulated system: the Amaranth-generated engine (fmprune_engine) and three memory models.
// Python loads the memories through plusargs, writes the registers, starts, and waits.
`default_nettype none
module sim_top #(
    parameter INTERNAL_CLOCK = 1,      // 1: the clock is generated here (10 ns), keeping the
                                       // testbench out of the per-cycle path; 0: input `clk`
    parameter LANES = 16,
    parameter FM_BYTES = 8,            // the feature-map port's beat
    parameter FM_DEPTH = 1 << 20,      // bytes
    parameter OUT_BYTES = 8,           // the output port's beat
    parameter W_DEPTH = 1 << 18,
    parameter OUT_DEPTH = 1 << 20      // bytes
) (
    input  wire        clk_in,
    output wire        clk,
    input  wire        rst,
    input  wire [5:0]  csr_addr,
    input  wire [31:0] csr_w_data,
    input  wire        csr_w_stb,
    output wire [31:0] csr_r_data,
    output wire        busy,
    output wire        error,
    input  wire [7:0]  stall_threshold,
    input  wire        dump,
    output wire [31:0] fm_reads,
    output wire [31:0] w_reads,
    output wire [31:0] out_writes,
    output wire [31:0] out_bytes,
    output wire [31:0] oob
);
    reg clk_gen = 1'b0;
    generate
        if (INTERNAL_CLOCK) begin : gen_clock
            always #5 clk_gen = ~clk_gen;
        end
    endgenerate
    assign clk = INTERNAL_CLOCK ? clk_gen : clk_in;

    wire fm_addr_valid, fm_addr_ready, fm_data_valid, fm_data_ready;
    wire [31:0] fm_addr_payload;
    wire [8*FM_BYTES-1:0] fm_data_payload;
    wire w_addr_valid, w_addr_ready, w_data_valid, w_data_ready;
    wire [31:0] w_addr_payload;
    wire [8*LANES-1:0] w_data_payload;
    wire out_valid, out_ready;
    wire [32+9*OUT_BYTES-1:0] out_payload;     // {strobe, data, beat address}
    wire [31:0] oob_fm, oob_w, oob_out;
    assign oob = oob_fm + oob_w + oob_out;

    fmprune_engine engine (
        .clk(clk), .rst(rst),
        .csr__addr(csr_addr), .csr__w_data(csr_w_data), .csr__w_stb(csr_w_stb), .csr__r_data(csr_r_data),
        .fm_addr__valid(fm_addr_valid), .fm_addr__ready(fm_addr_ready), .fm_addr__payload(fm_addr_payload),
        .fm_data__valid(fm_data_valid), .fm_data__ready(fm_data_ready), .fm_data__payload(fm_data_payload),
        .w_addr__valid(w_addr_valid), .w_addr__ready(w_addr_ready), .w_addr__payload(w_addr_payload),
        .w_data__valid(w_data_valid), .w_data__ready(w_data_ready), .w_data__payload(w_data_payload),
        .out__valid(out_valid), .out__ready(out_ready), .out__payload(out_payload),
        .busy(busy), .error(error)
    );
    fmprune_readmem #(.WIDTH(8 * FM_BYTES), .DEPTH(FM_DEPTH / FM_BYTES), .SEED(1), .PLUSARG("fm_mem")) fm (
        .clk(clk), .rst(rst), .stall_threshold(stall_threshold),
        .addr_valid(fm_addr_valid), .addr_ready(fm_addr_ready), .addr_payload(fm_addr_payload),
        .data_valid(fm_data_valid), .data_ready(fm_data_ready), .data_payload(fm_data_payload),
        .reads(fm_reads), .oob(oob_fm));
    fmprune_readmem #(.WIDTH(8 * LANES), .DEPTH(W_DEPTH), .SEED(12), .PLUSARG("w_mem")) wm (
        .clk(clk), .rst(rst), .stall_threshold(stall_threshold),
        .addr_valid(w_addr_valid), .addr_ready(w_addr_ready), .addr_payload(w_addr_payload),
        .data_valid(w_data_valid), .data_ready(w_data_ready), .data_payload(w_data_payload),
        .reads(w_reads), .oob(oob_w));
    fmprune_writemem #(.BYTES(OUT_BYTES), .DEPTH(OUT_DEPTH / OUT_BYTES), .SEED(24), .PLUSARG("out_mem")) om (
        .clk(clk), .rst(rst), .stall_threshold(stall_threshold),
        .req_valid(out_valid), .req_ready(out_ready), .req_addr(out_payload[31:0]),
        .req_data(out_payload[32+8*OUT_BYTES-1:32]), .req_strobe(out_payload[32+9*OUT_BYTES-1:32+8*OUT_BYTES]),
        .dump(dump), .writes(out_writes), .bytes(out_bytes), .oob(oob_out));
endmodule
`default_nettype wire
