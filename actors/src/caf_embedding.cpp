#include <caf/actor_cast.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "caf_glue.hpp"
#include "store_impl.hpp"

namespace kvactor {

namespace detail {
std::shared_ptr<store_impl> make_store(std::string_view type, const options& opts,
                                       caf::actor_system* sys);
}

void add_to_config(caf::actor_system_config& cfg) {
  cfg.add_error_category(
      error_category, [](std::uint8_t code, caf::atom_value, const caf::message& ctx) {
        std::string text = std::string{"kvactor::"} + to_string(static_cast<errc>(code));
        if (ctx.size() == 1 && ctx.match_element<std::string>(0))
          text += ": " + ctx.get_as<std::string>(0);
        return text;
      });
}

kvstore create(caf::actor_system& sys, std::string_view type, const options& opts) {
  return kvstore{detail::make_store(type, opts, &sys)};
}

store_actor_handle store_actor(const kvstore& kv) {
  if (!kv.valid()) throw error{errc::invalid_argument, "store_actor of an empty kvstore handle"};
  const caf::actor* a = kv.impl()->client_actor();
  if (!a)
    throw error{errc::unsupported,
                "store_actor: store type \"" + kv.type() + "\" has no store actor"};
  // Made by spawn_client, which checks the interface at compile time.
  return caf::actor_cast<store_actor_handle>(*a);
}

caf::error to_caf_error(const status& s) {
  if (s.is_ok()) return caf::error{};
  return caf::error{static_cast<std::uint8_t>(s.code()), error_category,
                    caf::make_message(s.message())};
}

status to_status(const caf::error& e) {
  if (!e) return {};
  if (e.category() == error_category) {
    std::string msg;
    const auto& ctx = e.context();
    if (ctx.size() == 1 && ctx.match_element<std::string>(0)) msg = ctx.get_as<std::string>(0);
    return status{static_cast<errc>(e.code()), msg};
  }
  return status{errc::internal, "CAF error " + caf::to_string(e)};
}

}  // namespace kvactor
