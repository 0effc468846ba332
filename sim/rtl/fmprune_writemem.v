`timescale 1ns/1ps
// Simulation write memory for the fmprune engine: byte writes {addr, data} with random stalls
// and its own count of writes; on `dump`, $writememh of the first +<PLUSARG>_len=N bytes to the
// file named by +<PLUSARG>=FILE.
`default_nettype none
module fmprune_writemem #(
    parameter DEPTH = 1024,
    parameter AW = 32,
    parameter SEED = 5,
    parameter PLUSARG = "out"
) (
    input  wire          clk,
    input  wire          rst,
    input  wire [7:0]    stall_threshold,
    input  wire          req_valid,
    output wire          req_ready,
    input  wire [AW-1:0] req_addr,
    input  wire [7:0]    req_data,
    input  wire          dump,
    output reg  [31:0]   writes,
    output reg  [31:0]   oob
);
    reg [7:0] mem [0:DEPTH-1];
    reg [1023:0] fname;
    integer i, len;
    initial begin
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = 8'h00;
    end
    localparam [15:0] SEED_S = SEED | 1;
    reg [15:0] ls;
    always @(posedge clk) begin
        if (rst) ls <= SEED_S;
        else ls <= (ls >> 1) ^ ({16{ls[0]}} & 16'hB400);
    end
    assign req_ready = !(ls[7:0] < stall_threshold);
    wire take = req_valid && req_ready;
    always @(posedge clk) begin
        if (rst) begin
            writes <= 0; oob <= 0;
        end else if (take) begin
            writes <= writes + 1;
            if (req_addr < DEPTH) mem[req_addr[$clog2(DEPTH)-1:0]] <= req_data;
            else oob <= oob + 1;
        end
    end
    reg dumped;
    always @(posedge clk) begin
        if (rst) dumped <= 0;
        else if (dump && !dumped) begin
            dumped <= 1;
            if ($value$plusargs({PLUSARG, "=%s"}, fname)) begin
                if ($value$plusargs({PLUSARG, "_len=%d"}, len) && len > 0) $writememh(fname, mem, 0, len - 1);
                else $writememh(fname, mem);
            end
        end
    end
endmodule
`default_nettype wire
