#include "optimizers.hpp"

#include <algorithm>
#include <cctype>
#include <string>

#include "optim/factories.hpp"
#include "optim/params.hpp"

namespace kvactor::detail {

namespace {

using factory = std::shared_ptr<const updater> (*)(optim::param_reader&);

struct entry {
  const char* name;
  factory make;
};

constexpr entry registry[] = {
    {"sgd", optim::make_sgd},           {"nag", optim::make_nag},
    {"signum", optim::make_signum},     {"adam", optim::make_adam},
    {"adagrad", optim::make_adagrad},   {"rmsprop", optim::make_rmsprop},
    {"adadelta", optim::make_adadelta}, {"ftrl", optim::make_ftrl},
    {"lamb", optim::make_lamb},
};

status bad(const std::string& what) {
  return status{errc::invalid_argument, "set_optimizer: " + what};
}

}  // namespace

result<std::shared_ptr<const updater>> make_optimizer(const optimizer_config& cfg) {
  std::string type = cfg.type;
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& e : registry) {
    if (type != e.name) continue;
    try {
      optim::param_reader r(cfg, type);
      auto u = e.make(r);
      r.finish();
      return u;
    } catch (const optim::config_error& ex) {
      return bad(ex.what());
    }
  }
  std::string known;
  for (const auto& e : registry)
    known += std::string{known.empty() ? "" : ", "} + e.name;
  return bad("unknown optimizer type \"" + cfg.type + "\" (known: " + known + ")");
}

}  // namespace kvactor::detail
