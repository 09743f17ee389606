#include "state_records.hpp"

namespace kvactor::detail {

wire::slot_record to_slot(const tensor& t) {
  wire::slot_record s;
  s.dtype = static_cast<std::uint8_t>(t.dtype());
  s.dims = t.shape().dims();
  t.wait_to_read();
  const auto* p = static_cast<const std::uint8_t*>(t.data_unchecked());
  s.bytes.assign(p, p + t.nbytes());
  return s;
}

}  // namespace kvactor::detail
