// CPU feature detection and the choice of kernel table, made once per process.
#pragma once

#include <string>
#include <vector>

#include "fusedrnn/kernels.h"

namespace fusedrnn {

struct CpuInfo {
  std::string isa;                     // the selected ISA
  std::vector<std::string> available;  // compiled and usable on this CPU, best first
  std::vector<std::string> compiled;   // compiled into this build, best first
};

const CpuInfo& cpu_info();
// The selected tables.  Throw std::runtime_error if FUSEDRNN_ISA names an ISA that
// this build or CPU cannot run.
const KernelTable<float>& kernels_f32();
const KernelTable<double>& kernels_f64();

}  // namespace fusedrnn
