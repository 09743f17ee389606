// One factory per optimizer family; each reads its parameters (and the common ones) from the
// reader. make_optimizer (actors/src/optimizers.cpp) picks the factory and calls finish().
#pragma once

#include <memory>

#include "kvactor/updater.hpp"
#include "params.hpp"

namespace kvactor::detail::optim {

std::shared_ptr<const updater> make_sgd(param_reader& r);
std::shared_ptr<const updater> make_nag(param_reader& r);
std::shared_ptr<const updater> make_signum(param_reader& r);
std::shared_ptr<const updater> make_adam(param_reader& r);
std::shared_ptr<const updater> make_adagrad(param_reader& r);
std::shared_ptr<const updater> make_rmsprop(param_reader& r);
std::shared_ptr<const updater> make_adadelta(param_reader& r);
std::shared_ptr<const updater> make_ftrl(param_reader& r);
std::shared_ptr<const updater> make_lamb(param_reader& r);

}  // namespace kvactor::detail::optim
