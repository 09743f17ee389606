// custom_store's default answers, and the registry of store types behind register_store().
#include "kvactor/custom_store.hpp"

#include <map>
#include <mutex>

#include "store_registry.hpp"

namespace kvactor {

future<void> custom_store::unsupported(std::string_view operation) {
  return future<void>::ready_with(
      status{errc::unsupported, std::string{operation} + " is not supported by this store type"});
}

future<void> custom_store::init(const key_list&, const value_list&) {
  return unsupported("init");
}
future<void> custom_store::push(const key_list&, const value_list&, int) {
  return unsupported("push");
}
future<void> custom_store::pull(const key_list&, const value_list&, int) {
  return unsupported("pull");
}
future<void> custom_store::pushpull(const key_list&, const value_list&, const value_list&, int) {
  return unsupported("pushpull");
}
future<void> custom_store::broadcast(const key_list&, const value_list&, const value_list&, int) {
  return unsupported("broadcast");
}
future<void> custom_store::init_row_sparse(const key_list&, const sparse_list&) {
  return unsupported("init with row-sparse values");
}
future<void> custom_store::push_row_sparse(const key_list&, const sparse_list&, int) {
  return unsupported("push with row-sparse values");
}
future<void> custom_store::row_sparse_pull(const key_list&, const value_list&, const value_list&,
                                           int) {
  return unsupported("row_sparse_pull");
}
future<void> custom_store::set_optimizer(const optimizer_config&) {
  return unsupported("set_optimizer");
}
// By value, as the public virtual declares it: an override keeps the updater.
void custom_store::set_updater(
    std::shared_ptr<const updater>) {  // NOLINT(performance-unnecessary-value-param)
  throw error{errc::unsupported, "set_updater is not supported by this store type"};
}
future<void> custom_store::set_gradient_compression(const std::string&, double) {
  return unsupported("set_gradient_compression");
}
future<void> custom_store::save_optimizer_states(const std::string&, bool) {
  return unsupported("save_optimizer_states");
}
future<void> custom_store::load_optimizer_states(const std::string&) {
  return unsupported("load_optimizer_states");
}
future<void> custom_store::send_command_to_servers(int, const std::string&) {
  return unsupported("send_command_to_servers");
}
future<void> custom_store::barrier() {
  return future<void>::ready_with(status{});
}
bool custom_store::is_capable(std::string_view) const {
  return false;
}

namespace {

struct registry {
  std::mutex mu;
  std::map<std::string, store_factory, std::less<>> types;
};

registry& the_registry() {
  static registry r;
  return r;
}

}  // namespace

void register_store(std::string name, store_factory factory) {
  if (name.empty()) throw error{errc::invalid_argument, "register_store: an empty type name"};
  if (!factory)
    throw error{errc::invalid_argument, "register_store: no factory for \"" + name + "\""};
  if (detail::is_builtin_store_type(name))
    throw error{errc::invalid_argument,
                "register_store: \"" + name + "\" is a built-in store type"};
  auto& r = the_registry();
  std::lock_guard<std::mutex> g(r.mu);
  if (!r.types.emplace(name, std::move(factory)).second)
    throw error{errc::invalid_argument,
                "register_store: store type \"" + name + "\" is already registered"};
}

namespace detail {

store_factory find_registered_store(std::string_view type) {
  auto& r = the_registry();
  std::lock_guard<std::mutex> g(r.mu);
  auto it = r.types.find(type);
  return it == r.types.end() ? store_factory{} : it->second;
}

std::vector<std::string> registered_store_types() {
  auto& r = the_registry();
  std::lock_guard<std::mutex> g(r.mu);
  std::vector<std::string> names;
  for (const auto& [name, f] : r.types)
    names.push_back(name);
  return names;
}

}  // namespace detail
}  // namespace kvactor
