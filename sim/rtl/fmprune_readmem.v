`timescale 1ns/1ps
// Simulation read memory for the fmprune engine: in-order valid/ready read port, contents loaded
// with $readmemh from the file named by +<PLUSARG>=FILE, random stalls from a 16-bit LFSR
// (stall when lfsr[7:0] < stall_threshold), and its own count of reads.
`default_nettype none
module fmprune_readmem #(
    parameter WIDTH = 8,
    parameter DEPTH = 1024,
    parameter AW = 32,
    parameter SEED = 1,
    parameter PLUSARG = "mem"
) (
    input  wire             clk,
    input  wire             rst,
    input  wire [7:0]       stall_threshold,
    input  wire             addr_valid,
    output wire             addr_ready,
    input  wire [AW-1:0]    addr_payload,
    output wire             data_valid,
    input  wire             data_ready,
    output wire [WIDTH-1:0] data_payload,
    output reg  [31:0]      reads,
    output reg  [31:0]      oob
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [1023:0] fname;
    initial begin
        if ($value$plusargs({PLUSARG, "=%s"}, fname)) $readmemh(fname, mem);
    end

    // LFSRs: one for the address side, one for the data side
    localparam [15:0] SEED_A = SEED | 1;
    localparam [15:0] SEED_D = (SEED * 7 + 3) | 1;
    reg [15:0] la, ld;
    always @(posedge clk) begin
        if (rst) begin
            la <= SEED_A;
            ld <= SEED_D;
        end else begin
            la <= (la >> 1) ^ ({16{la[0]}} & 16'hB400);
            ld <= (ld >> 1) ^ ({16{ld[0]}} & 16'hB400);
        end
    end
    wire stall_a = la[7:0] < stall_threshold;
    wire stall_d = ld[7:0] < stall_threshold;

    // four-entry FIFO of read data; an address is accepted only when its data has room
    reg [WIDTH-1:0] q [0:3];
    reg [2:0] count;
    reg [1:0] head, tail;
    wire take = addr_valid && addr_ready;
    wire give = data_valid && data_ready;
    assign addr_ready = (count < 3'd4) && !stall_a;
    assign data_valid = (count != 3'd0) && !stall_d;
    assign data_payload = q[head];
    wire in_range = addr_payload < DEPTH;
    always @(posedge clk) begin
        if (rst) begin
            count <= 0; head <= 0; tail <= 0; reads <= 0; oob <= 0;
        end else begin
            if (take) begin
                q[tail] <= in_range ? mem[addr_payload[$clog2(DEPTH)-1:0]] : {WIDTH{1'b0}};
                tail <= tail + 2'd1;
                reads <= reads + 1;
                if (!in_range) oob <= oob + 1;
            end
            if (give) head <= head + 2'd1;
            count <= count + (take ? 3'd1 : 3'd0) - (give ? 3'd1 : 3'd0);
        end
    end
endmodule
`default_nettype wire
