// The same simulated system with no Python at all: the reference for cocotb's overhead.
// Usage: sim_top +fm_mem=F +w_mem=F +out_mem=F +out_mem_len=N +regs=FILE +budget=N
// FILE holds "address value" lines (decimal); the last write (CTRL) starts the engine.
#include "Vsim_top.h"
#include "verilated.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
    auto ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
    auto top = new Vsim_top{ctx};
    const char* regs_arg = ctx->commandArgsPlusMatch("regs=");
    const char* budget_arg = ctx->commandArgsPlusMatch("budget=");
    if (!*regs_arg) { fprintf(stderr, "need +regs=FILE\n"); return 2; }
    std::string regs_file = std::string(regs_arg).substr(6);
    unsigned long long budget = *budget_arg ? strtoull(budget_arg + 8, nullptr, 10) : 1000000000ULL;
    auto tick = [&]() { top->clk_in = 0; top->eval(); top->clk_in = 1; top->eval(); };
    top->rst = 1; top->csr_w_stb = 0; top->dump = 0; top->stall_threshold = 0;
    tick(); tick();
    top->rst = 0; tick();
    FILE* f = fopen(regs_file.c_str(), "r");
    if (!f) { fprintf(stderr, "cannot open %s\n", regs_file.c_str()); return 2; }
    unsigned a; unsigned long v;
    while (fscanf(f, "%u %lu", &a, &v) == 2) {
        top->csr_addr = a; top->csr_w_data = (unsigned)v; top->csr_w_stb = 1; tick(); top->csr_w_stb = 0;
    }
    fclose(f);
    auto t0 = std::chrono::steady_clock::now();
    unsigned long long cycles = 0;
    tick(); cycles++;
    while (top->busy && cycles < budget) { tick(); cycles++; }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    top->dump = 1; tick(); tick();
    printf("{\"cycles\": %llu, \"seconds\": %.6f, \"timeout\": %s}\n", cycles, s, top->busy ? "true" : "false");
    top->final();
    delete top;
    delete ctx;
    return 0;
}
