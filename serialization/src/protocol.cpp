#include "kvactor/serialization/protocol.hpp"

#include "kvactor/serialization/schema.hpp"

namespace kvactor::wire {

namespace {

constexpr std::uint8_t meta_version = 1;

template <class T>
constexpr const char* meta_name() noexcept;
#define KVACTOR_WIRE_NAME(meta, name)                \
  template <>                                        \
  constexpr const char* meta_name<meta>() noexcept { \
    return name;                                     \
  }
KVACTOR_WIRE_METAS(KVACTOR_WIRE_NAME)
#undef KVACTOR_WIRE_NAME

template <class T>
serialization::schema_envelope envelope() noexcept {
  return {meta_name<T>(), meta_version, 0};
}

}  // namespace

// Both tables are (name, number, column) lists: one case shape serves both.
#define KVACTOR_WIRE_NAME_CASE(name, number, column) \
  case number:                                       \
    return #name;
#define KVACTOR_WIRE_KNOWN_CASE(name, number, column) case number:

const char* to_string(msg m) noexcept {
  switch (static_cast<int>(m)) { KVACTOR_WIRE_MESSAGES(KVACTOR_WIRE_NAME_CASE) }
  return "unknown";
}

std::string type_text(std::uint8_t type) {
  return std::to_string(type) + " (" + to_string(static_cast<msg>(type)) + ")";
}

bool known_message(std::uint8_t type) noexcept {
  switch (type) {
    KVACTOR_WIRE_MESSAGES(KVACTOR_WIRE_KNOWN_CASE)
    return true;
  }
  return false;
}

const char* to_string(command c) noexcept {
  switch (static_cast<int>(c)) { KVACTOR_WIRE_COMMANDS(KVACTOR_WIRE_NAME_CASE) }
  return "unknown_command";
}

#undef KVACTOR_WIRE_NAME_CASE
#undef KVACTOR_WIRE_KNOWN_CASE

bool mxnet_command(int head) noexcept {
  // One case per table line, by design: cases that return the same flag are not clones.
  // NOLINTBEGIN(bugprone-branch-clone)
  switch (head) {
#define KVACTOR_WIRE_CASE(name, number, mxnet) \
  case number:                                 \
    return mxnet;
    KVACTOR_WIRE_COMMANDS(KVACTOR_WIRE_CASE)
#undef KVACTOR_WIRE_CASE
  }
  // NOLINTEND(bugprone-branch-clone)
  return false;
}

wire_key wire_key::from(const key& k) {
  wire_key w;
  w.is_string = k.is_string();
  if (w.is_string)
    w.name = k.as_string();
  else
    w.id = k.as_int();
  return w;
}

key wire_key::to_key() const {
  return is_string ? key{name} : key{id};
}

template <class T>
std::vector<std::uint8_t> encode(const T& m) {
  return serialization::encode_schema(m, envelope<T>());
}

template <class T>
void encode_into(const T& m, std::vector<std::uint8_t>& out) {
  serialization::encode_schema_into(m, envelope<T>(), out);
}

template <class T>
result<T> decode(const std::vector<std::uint8_t>& bytes) {
  return serialization::decode_schema<T>(bytes.data(), bytes.size(), envelope<T>());
}

#define KVACTOR_WIRE_INSTANTIATE(meta, name)                                \
  template std::vector<std::uint8_t> encode<meta>(const meta&);             \
  template void encode_into<meta>(const meta&, std::vector<std::uint8_t>&); \
  template result<meta> decode<meta>(const std::vector<std::uint8_t>&);     \
  std::string to_string(const meta& m) {                                    \
    return serialization::print_schema(m, name);                            \
  }
KVACTOR_WIRE_METAS(KVACTOR_WIRE_INSTANTIATE)
#undef KVACTOR_WIRE_INSTANTIATE

std::string describe(std::uint8_t type, const std::vector<std::uint8_t>& meta) {
  switch (static_cast<msg>(type)) {
#define KVACTOR_WIRE_CASE(name, number, meta_type)                  \
  case msg::name: {                                                 \
    auto m = decode<meta_type>(meta);                               \
    return m ? std::string{#name " "} + to_string(*m)               \
             : std::string{#name " ("} + m.error().message() + ")"; \
  }
    KVACTOR_WIRE_MESSAGES(KVACTOR_WIRE_CASE)
#undef KVACTOR_WIRE_CASE
  }
  return "unknown message type " + std::to_string(type);
}

}  // namespace kvactor::wire
