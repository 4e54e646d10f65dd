// Cell kinds and gate order: the one place the rest of the code asks.
//
// Gate order is PyTorch's (rows of weight_ih / weight_hh, each block H rows):
//   LSTM: i, f, g, o          (G = 4)
//   GRU : r, z, n             (G = 3)
//   RNN : the single pre-activation (G = 1)
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fusedrnn {

enum class Cell : int {
  lstm = 0,
  gru = 1,               // reset_after=True: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
  gru_reset_before = 2,  // reset_after=False: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
  rnn_tanh = 3,
  rnn_relu = 4,
};

constexpr int num_gates(Cell c) {
  return c == Cell::lstm ? 4 : (c == Cell::gru || c == Cell::gru_reset_before) ? 3 : 1;
}

constexpr bool is_gru(Cell c) { return c == Cell::gru || c == Cell::gru_reset_before; }
constexpr bool is_rnn(Cell c) { return c == Cell::rnn_tanh || c == Cell::rnn_relu; }

inline Cell cell_from_name(const std::string& name) {
  if (name == "lstm") return Cell::lstm;
  if (name == "gru") return Cell::gru;
  if (name == "gru_reset_before") return Cell::gru_reset_before;
  if (name == "rnn_tanh") return Cell::rnn_tanh;
  if (name == "rnn_relu") return Cell::rnn_relu;
  throw std::invalid_argument(
      "cell: expected one of 'lstm', 'gru', 'gru_reset_before', 'rnn_tanh', 'rnn_relu', got '" +
      name + "'");
}

inline const char* cell_name(Cell c) {
  switch (c) {
    case Cell::lstm: return "lstm";
    case Cell::gru: return "gru";
    case Cell::gru_reset_before: return "gru_reset_before";
    case Cell::rnn_tanh: return "rnn_tanh";
    case Cell::rnn_relu: return "rnn_relu";
  }
  return "?";
}

}  // namespace fusedrnn
