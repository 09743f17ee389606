#include "kvactor/optimizer_config.hpp"

namespace kvactor {

double optimizer_config::get(const std::string& name, double fallback) const {
  auto it = params.find(name);
  return it == params.end() ? fallback : it->second;
}

optimizer_config sgd_config(double learning_rate, double momentum, double wd, double rescale_grad,
                            double clip_gradient) {
  return optimizer_config{"sgd",
                          {{"learning_rate", learning_rate},
                           {"momentum", momentum},
                           {"wd", wd},
                           {"rescale_grad", rescale_grad},
                           {"clip_gradient", clip_gradient}}};
}

}  // namespace kvactor
