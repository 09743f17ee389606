// The optimizer registry: turns a declarative optimizer_config into an updater. Shared by
// local stores and servers, so both compute the same update.
// Thread-safety: pure function; the updaters it returns are safe to share across shards.
//
// ---- The config: MXNet 1.x's optimizers, names and defaults ----
//
// config.type (case-insensitive) and config.params, a map of named doubles. Booleans are 0 or
// 1, counts are whole numbers. A name the optimizer does not know, a non-finite value or one
// out of range gives invalid_argument naming the parameter; nothing is ignored.
//
// Every optimizer takes
//   learning_rate (alias lr)   default per optimizer (below), >= 0
//   wd                         0, >= 0 (weight decay)
//   rescale_grad               1
//   clip_gradient              absent, or <= 0: no clipping (MXNet's optimizers pass it to the
//                              kernels only when it is truthy); > 0 clips to [-c, c]
//   lr_mult.<key>, wd_mult.<key>   per-key multipliers, default 1, >= 0; <key> is an int key
//                              in decimal ("lr_mult.3", "lr_mult.-1") or a string key as it
//                              is ("wd_mult.fc1_bias"). A store never mixes the two kinds, so
//                              "lr_mult.3" is int key 3 or string key "3", whichever it holds.
//   lr_scheduler and lr_scheduler.* (below)
//
//   type      params (MXNet default)                               slots (make_state order)
//   sgd       learning_rate 0.01, momentum 0 [0,1), lazy_update 1  mom (only if momentum != 0)
//   nag       learning_rate 0.01, momentum 0 [0,1)                 mom (only if momentum != 0)
//   signum    learning_rate 0.01, momentum 0.9 [0,1), wd_lh 0      mom (only if momentum != 0)
//   adam      learning_rate 0.001, beta1 0.9, beta2 0.999 [0,1),   mean, var
//             epsilon 1e-8, lazy_update 1
//   adagrad   learning_rate 0.01, eps 1e-7 (alias epsilon)         history
//   rmsprop   learning_rate 0.001, gamma1 0.9, gamma2 0.9 [0,1),   n; centered: n, g, delta
//             epsilon 1e-8, centered 0, clip_weights absent/<=0: off
//   adadelta  rho 0.9 [0,1), epsilon 1e-5 (no learning rate:       acc_g, acc_delta
//             MXNet 1.x's AdaDelta ignores it, and so the schedule and lr_mult)
//   ftrl      learning_rate 0.1 (> 0), lamda1 0.01, beta 1         z, n
//   lamb      learning_rate 0.001, beta1 0.9, beta2 0.999,         mean, var
//             epsilon 1e-6, lower_bound / upper_bound absent or <= 0: off,
//             bias_correction 1
// epsilon values must be >= 0. Every slot starts at zero and is shaped like the weight; its
// dtype is kernels::slot_dtype(weight dtype): the weight's for float32/float64, float32 for
// float16/bfloat16. Formulas and their MXNet operation order:
// device/internal/kvactor/detail/kernels.hpp.
//
// ---- Learning-rate schedules (MXNet 1.x lr_scheduler.py) ----
//
// lr_scheduler = 0 none (default), 1 FactorScheduler, 2 MultiFactorScheduler, 3 PolyScheduler,
// 4 CosineScheduler; their arguments are lr_scheduler.<MXNet constructor argument>:
//   1 factor:       lr_scheduler.step (required, >= 1), lr_scheduler.factor 1 (0, 1],
//                   lr_scheduler.stop_factor_lr 1e-8
//   2 multifactor:  lr_scheduler.step.0, lr_scheduler.step.1, ... (required, consecutive
//                   indices from 0, increasing, >= 1), lr_scheduler.factor 1 (0, 1]
//   3 poly:         lr_scheduler.max_update (required, > warmup_steps), lr_scheduler.pwr 2,
//                   lr_scheduler.final_lr 0
//   4 cosine:       lr_scheduler.max_update (required, > warmup_steps), lr_scheduler.final_lr 0
//   any of them:    lr_scheduler.warmup_steps 0, lr_scheduler.warmup_begin_lr 0 (<= base),
//                   lr_scheduler.warmup_mode 0 linear / 1 constant
// base_lr is learning_rate. The schedule is evaluated at the key's update count including the
// current update (1 for the first), where MXNet uses the largest count over all keys; the
// result is multiplied by the key's lr_mult. Poly and cosine stay at their max_update value
// afterwards, as MXNet's do.
//
// ---- Update counts, states, ranges and rows ----
//
// make_state gives a kvactor::optimizer_state{count = 0, slots}. update(), begin_update() and
// update_rows() count one update each (begin_update before the update_range calls of that
// update, which count nothing). Every optimizer but lamb is element_wise(); lamb needs
// whole-tensor norms and runs both phases inside update(). Lazy row updates (lazy_rows()):
// sgd and adam when lazy_update is 1, adagrad and ftrl always: only the given rows of the
// weight and of every slot change, with the dense formula (wd too applies to those rows only).
// MXNet's sparse adagrad refuses wd != 0; here it is the dense formula on those rows.
#pragma once

#include <memory>

#include "kvactor/optimizer_config.hpp"
#include "kvactor/result.hpp"
#include "kvactor/updater.hpp"

namespace kvactor::detail {

/// invalid_argument for an unknown type, an unknown hyper-parameter or a value out of range.
result<std::shared_ptr<const updater>> make_optimizer(const optimizer_config& cfg);

}  // namespace kvactor::detail
