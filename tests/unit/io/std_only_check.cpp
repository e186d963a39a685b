// SPDX-License-Identifier: MIT
// Built with ternq's include directory and nothing else: core/, optim/, pack/, kernels/ (and their umbrellas) and
// io/'s GGUF headers must need only the standard library.
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "ternq/core.hpp"
#include "ternq/io/gguf_llama.hpp"
#include "ternq/io/gguf_reader.hpp"
#include "ternq/io/gguf_types.hpp"
#include "ternq/io/gguf_writer.hpp"
#include "ternq/kernels.hpp"
#include "ternq/optim.hpp"
#include "ternq/pack.hpp"
#include "ternq/pack/pack.hpp"
#include "ternq/pack/reference.hpp"
#include "ternq/pack/to_float.hpp"
#include "ternq/pack/unpack.hpp"

int main() {
  ternq::ternary_matrix q(2, 256, 256);
  q.codes()[3] = 1;
  q.scale(0, 0) = 0.5F;
  q.scale(1, 0) = 0.25F;
  const auto p = ternq::pack::pack(q, ternq::pack::format::tq1_0);
  ternq::io::gguf_writer w;
  w.add("general.architecture", std::string("none"));
  w.add_tensor("t", p);
  std::ostringstream out(std::ios::binary);
  w.open(out);
  w.write_tensor("t", p);
  w.close();
  const std::string s = out.str();
  const auto r = ternq::io::gguf_reader::from_bytes(std::vector<std::uint8_t>(s.begin(), s.end()));
  const ternq::ternary_matrix back = r.read_ternary(r.tensor("t"));
  // The packed product reads the same bytes: row 0 has one +1 at column 3 of scale 0.5.
  std::vector<float> x(256, 0.0F), y(2);
  x[3] = 2.0F;
  ternq::kernels::matvec(ternq::kernels::make_packed_view(p), x, y);
  return back.code(0, 3) == 1 && back.scale(1, 0) == 0.25F && y[0] == 1.0F && y[1] == 0.0F ? 0 : 1;
}
