`timescale 1ns/1ps
// Simulation write memory for the fmprune engine: beat writes {addr, data, strobe} of BYTES bytes
// with random stalls and its own counts of beats and strobed bytes; on `dump`, $writememh of the
// beats holding the first +<PLUSARG>_len=N bytes to the file named by +<PLUSARG>=FILE.
`default_nettype none
module fmprune_writemem #(
    parameter BYTES = 1,
    parameter DEPTH = 1024,            // beats
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
    input  wire [8*BYTES-1:0] req_data,
    input  wire [BYTES-1:0]   req_strobe,
    input  wire          dump,
    output reg  [31:0]   writes,
    output reg  [31:0]   bytes,
    output reg  [31:0]   oob
);
    reg [8*BYTES-1:0] mem [0:DEPTH-1];
    reg [1023:0] fname;
    integer i, len;
    initial begin
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {8*BYTES{1'b0}};
    end
    localparam [15:0] SEED_S = SEED | 1;
    reg [15:0] ls;
    always @(posedge clk) begin
        if (rst) ls <= SEED_S;
        else ls <= (ls >> 1) ^ ({16{ls[0]}} & 16'hB400);
    end
    assign req_ready = !(ls[7:0] < stall_threshold);
    wire take = req_valid && req_ready;
    integer b, n;
    always @(*) begin
        n = 0;
        for (b = 0; b < BYTES; b = b + 1) n = n + req_strobe[b];
    end
    integer k;
    always @(posedge clk) begin
        if (rst) begin
            writes <= 0; bytes <= 0; oob <= 0;
        end else if (take) begin
            writes <= writes + 1;
            bytes <= bytes + n;
            if (req_addr < DEPTH) begin
                for (k = 0; k < BYTES; k = k + 1)
                    if (req_strobe[k]) mem[req_addr[$clog2(DEPTH)-1:0]][8*k +: 8] <= req_data[8*k +: 8];
            end else oob <= oob + 1;
        end
    end
    reg dumped;
    always @(posedge clk) begin
        if (rst) dumped <= 0;
        else if (dump && !dumped) begin
            dumped <= 1;
            if ($value$plusargs({PLUSARG, "=%s"}, fname)) begin
                if ($value$plusargs({PLUSARG, "_len=%d"}, len) && len > 0)
                    $writememh(fname, mem, 0, (len + BYTES - 1) / BYTES - 1);
                else $writememh(fname, mem);
            end
        end
    end
endmodule
`default_nettype wire
