// The DLPack exchange structs (ABI version 0.x: what PyTorch 1.13 and NumPy 1.24 hand out from
// __dlpack__), declared here because Debian 12 installs no DLPack header for the build to use.
// Only the layout matters: these are read from capsules that other libraries made.
// Thread-safety: plain data.
#pragma once

#include <cstdint>

namespace kvactor::python::dl {

/// DLDeviceType: where the data lives.
enum device_type : std::int32_t {
  cpu = 1,
  cuda = 2,
  cuda_host = 3,  // pinned host memory, readable by the CPU
  cuda_managed = 13,
};

/// DLDataTypeCode.
enum type_code : std::uint8_t { int_code = 0, uint_code = 1, float_code = 2, bfloat_code = 4 };

struct device {
  std::int32_t type;
  std::int32_t id;
};

struct data_type {
  std::uint8_t code;
  std::uint8_t bits;
  std::uint16_t lanes;
};

struct tensor {
  void* data;
  dl::device device;
  std::int32_t ndim;
  data_type dtype;
  std::int64_t* shape;
  std::int64_t* strides;  // in elements; null means compact row-major
  std::uint64_t byte_offset;
};

struct managed_tensor {
  dl::tensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(managed_tensor* self);
};

/// The capsule names of the protocol: a capsule still named "dltensor" is unconsumed, and its
/// own destructor (the producer's) calls the deleter; kvactor never renames it, so the
/// producer frees the tensor once the capsule (kept alive while the store uses the memory)
/// goes away.
inline constexpr const char* capsule_name = "dltensor";

}  // namespace kvactor::python::dl
