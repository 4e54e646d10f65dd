// CPU feature detection and the choice of kernel table, made once per process.
#pragma once

#include <string>
#include <vector>

#include "fusedrnn/kernels.h"
#include "fusedrnn/quant.h"

namespace fusedrnn {

struct CpuInfo {
  std::string isa;                     // the selected ISA
  std::vector<std::string> available;  // compiled and usable on this CPU, best first
  std::vector<std::string> compiled;   // compiled into this build, best first
  std::vector<std::string> emulated;   // compiled for emulation (test builds only), else empty
};

// Throws std::runtime_error (on first use) if FUSEDRNN_ISA names an ISA that this
// build or CPU cannot run.
CpuInfo cpu_info();
// Switches the selected ISA for the rest of the process (tests use it to run every
// ISA in one process); throws std::runtime_error as above.  It applies to weights
// packed afterwards: packed weights keep the table of the ISA that packed them (the
// binding stores it beside them), so they run on that ISA's kernels whatever the
// selection is later.
void use_isa(const std::string& name);
// The selected tables.
const KernelTable<float>& kernels_f32();
const KernelTable<double>& kernels_f64();
const QuantTable& quant_kernels();  // the selected ISA's quantized kernels

}  // namespace fusedrnn
