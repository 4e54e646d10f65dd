// The training workspace's layout (Workspace of fusedrnn/dims.h), out of line and
// compiled with the baseline flags only: see the note on Workspace in dims.h.
#include <cstdint>

#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"

namespace fusedrnn {

int64_t Workspace::G() const { return num_gates(cell); }
int64_t Workspace::gates_size() const { return is_rnn(cell) ? 0 : d.N * G() * d.H; }
int64_t Workspace::aux_size() const {
  if (cell == Cell::lstm) return (d.B + d.N) * d.H;
  if (is_gru(cell)) return d.N * d.H;
  return 0;
}
int64_t Workspace::h_size() const { return (d.B + d.N) * (d.P ? d.P : d.H); }
int64_t Workspace::m_size() const { return d.P ? d.N * d.H : 0; }
int64_t Workspace::gates_offset() const { return 0; }
int64_t Workspace::aux_offset() const { return gates_size(); }
int64_t Workspace::h_offset() const { return gates_size() + aux_size(); }
int64_t Workspace::m_offset() const { return h_offset() + h_size(); }
int64_t Workspace::size() const { return m_offset() + m_size(); }

}  // namespace fusedrnn
