// Behavioural models of the two ECP5 primitives fmprune instantiates by hand, for the subset of
// their modes it uses; Yosys ships only black boxes for them. Used by tests/test_ecp5_prims.py to
// check the wiring of hw/ram.py, boards/memory.ECP5RAM and hw/engine._PipelinedMul (address bit
// placement, data slices, latency) against their portable twins. They model the data sheet's
// behaviour as understood here (Lattice TN1264, ECP5 memory usage guide; TN1267, sysDSP usage
// guide); they are not Lattice's simulation library.

// DP16KD, true dual-port 16 Kbit block RAM. Modelled: DATA_WIDTH 1, 2, 4, 9 (the same on both
// ports), the word address at the top of AD[13:0] (AD[13:0] for x1, AD[13:1] for x2, AD[13:2]
// for x4, AD[13:3] for x9), WRITEMODE NORMAL (a port's output holds while it writes),
// REGMODE NOREG / OUTREG (OUTREG: one more register after the read latch, loaded when OCE),
// CE, WE; and DATA_WIDTH 36 on both ports, the 512 x 36 pseudo-dual-port mode as Yosys's own
// mapping uses it (share/lattice/brams_map_16kd.v: written through port A, read through port B,
// the 36 bits over both ports' pins; REGMODE_B for the read data). Not modelled: chip selects,
// resets, x18 byte enables, cascading, initial values.
module DP16KD #(
    parameter DATA_WIDTH_A = 18, parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
    parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL",
    parameter RESETMODE = "SYNC", parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000", parameter GSR = "ENABLED"
) (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    localparam W = DATA_WIDTH_A;
    generate if (W == 36) begin : pdp
        // the 512 x 36 pseudo-dual-port mode: written through port A (CEA; ADA3..0 the byte
        // enables of bits 0-8, 9-17, 18-26, 27-35), read through port B, both addressed at
        // AD13..5; data bits 0-17 on port A's pins and 18-35 on port B's, written and read
        wire [35:0] di = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
                          DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
        wire [3:0] be = {ADA3, ADA2, ADA1, ADA0};
        wire [8:0] wa36 = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5};
        wire [8:0] ra36 = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5};
        reg [35:0] m36 [0:511];
        reg [35:0] l36, r36;
        integer k;
        initial begin
            for (k = 0; k < 512; k = k + 1) m36[k] = 0;
            l36 = 0; r36 = 0;
        end
        always @(posedge CLKA) if (CEA && WEA) begin
            for (k = 0; k < 4; k = k + 1) if (be[k]) m36[wa36][9 * k +: 9] <= di[9 * k +: 9];
        end
        always @(posedge CLKB) if (CEB) l36 <= m36[ra36];
        always @(posedge CLKB) if (OCEB) r36 <= l36;
        wire [35:0] do36 = REGMODE_B == "OUTREG" ? r36 : l36;
        assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0,
                DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = do36;
    end else begin : tdp

    localparam LOW = W == 1 ? 0 : W == 2 ? 1 : W == 4 ? 2 : 3;
    localparam DEPTH = W == 9 ? 2048 : 16384 / W;
    initial if (DATA_WIDTH_A != DATA_WIDTH_B || !(W == 1 || W == 2 || W == 4 || W == 9 || W == 36)) begin
        $display("DP16KD model: DATA_WIDTH %0d / %0d not modelled", DATA_WIDTH_A, DATA_WIDTH_B);
        $finish;
    end
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire [13:0] wa = ada >> LOW;
    wire [13:0] wb = adb >> LOW;
    reg [W-1:0] mem [0:DEPTH-1];
    reg [W-1:0] la, lb, ra, rb;          // read latches, output registers
    integer i;
    initial begin                        // the bitstream's INITVAL_xx: zeros
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
        la = 0; lb = 0; ra = 0; rb = 0;
    end
    always @(posedge CLKA) if (CEA) begin
        if (WEA) mem[wa] <= dia[W-1:0];
        else la <= mem[wa];
    end
    always @(posedge CLKB) if (CEB) begin
        if (WEB) mem[wb] <= dib[W-1:0];
        else lb <= mem[wb];
    end
    always @(posedge CLKA) if (OCEA) ra <= la;
    always @(posedge CLKB) if (OCEB) rb <= lb;
    wire [17:0] doa = REGMODE_A == "OUTREG" ? ra : la;
    wire [17:0] dob = REGMODE_B == "OUTREG" ? rb : lb;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
    end endgenerate
endmodule

// MULT18X18D, 18 x 18 multiplier. Modelled: signed or unsigned operands (SIGNEDA / SIGNEDB),
// input registers (REG_INPUTA_CLK / REG_INPUTB_CLK "CLK0" or "NONE"), the output register
// (REG_OUTPUT_CLK "CLK0" or "NONE") on CLK0 with CE0. Not modelled: the pipeline register,
// resets, shift / cascade inputs, C.
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0", parameter REG_INPUTA_RST = "RST0",
    parameter REG_INPUTB_CLK = "NONE", parameter REG_INPUTB_CE = "CE0", parameter REG_INPUTB_RST = "RST0",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0", parameter REG_OUTPUT_RST = "RST0",
    parameter GSR = "ENABLED", parameter RESETMODE = "SYNC"
) (
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
    output P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
    initial if (REG_PIPELINE_CLK != "NONE") begin
        $display("MULT18X18D model: the pipeline register is not modelled");
        $finish;
    end
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] ar, br;
    reg sar, sbr;
    reg [35:0] pr;
    initial begin ar = 0; br = 0; sar = 0; sbr = 0; pr = 0; end
    always @(posedge CLK0) if (CE0) begin
        ar <= a; br <= b; sar <= SIGNEDA; sbr <= SIGNEDB;
    end
    wire [17:0] ai = REG_INPUTA_CLK == "CLK0" ? ar : a;
    wire [17:0] bi = REG_INPUTB_CLK == "CLK0" ? br : b;
    wire sa = REG_INPUTA_CLK == "CLK0" ? sar : SIGNEDA;
    wire sb = REG_INPUTB_CLK == "CLK0" ? sbr : SIGNEDB;
    wire signed [36:0] as = sa ? {{19{ai[17]}}, ai} : {19'b0, ai};
    wire signed [36:0] bs = sb ? {{19{bi[17]}}, bi} : {19'b0, bi};
    wire signed [73:0] full = as * bs;
    wire [35:0] p = full[35:0];
    always @(posedge CLK0) if (CE0) pr <= p;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
            P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} =
        REG_OUTPUT_CLK == "CLK0" ? pr : p;
endmodule
