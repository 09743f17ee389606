// Copies between host and devices and between devices (KVACTOR_ENABLE_CUDA=ON build).
//
// Staging. Pageable host memory cannot be DMA'd asynchronously: cudaMemcpyAsync from it blocks
// the caller (device -> host until the copy ends), and runs at a fraction of the pinned rate.
// So a copy with pageable host memory goes through a ring of pinned chunks, all enqueued at
// call time (the caller never waits):
//   host -> device: staging stream: [host function: memcpy chunk into slot] -> event "full"
//                   caller's stream: wait "full", DMA slot -> device, event "free"
//   device -> host: caller's stream: wait "free", DMA device -> slot, event "full"
//                   staging stream: wait "full", [host function: memcpy slot -> host], "free"
// so the CPU copy of one chunk overlaps the DMA of the previous. The host functions only copy
// memory (no CUDA calls, as CUDA requires); big chunks are copied by a few threads. The
// operation's pinned slots, events and task records are released by a completion callback on
// the caller's stream, after all of it has run.
// Between devices without peer access the same ring carries device -> slot -> device on an
// internal stream of each device.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "common.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_memory.hpp"
#include "kvactor/detail/thread_pool.hpp"

namespace kvactor::device_kernels {

namespace {

constexpr std::size_t default_chunk = std::size_t{8} << 20;
constexpr std::size_t ring_slots = 3;

std::atomic<bool> forced_staged{false};
std::atomic<std::size_t> chunk_override{0};

std::size_t chunk_bytes() noexcept {
  const std::size_t c = chunk_override.load(std::memory_order_relaxed);
  return c ? c : default_chunk;
}

// Threads for the host side of staged copies (a memcpy of a few MiB per chunk).
thread_pool& copy_threads() {
  static thread_pool* pool = new thread_pool(std::clamp<std::size_t>(
      std::thread::hardware_concurrency() / 2, std::size_t{1}, std::size_t{8}));
  return *pool;
}

struct memcpy_task {
  void* dst = nullptr;
  const void* src = nullptr;
  std::size_t bytes = 0;
  thread_pool* pool = nullptr;
};

void CUDART_CB run_memcpy(void* p) {
  const auto* t = static_cast<const memcpy_task*>(p);
  constexpr std::size_t piece = std::size_t{1} << 20;
  const std::size_t parts = std::min<std::size_t>(t->bytes / piece, t->pool->size() + 1);
  if (parts <= 1) {
    std::memcpy(t->dst, t->src, t->bytes);
    return;
  }
  t->pool->parallel_for(parts, [t, parts](std::size_t i) {
    std::size_t b = 0, e = 0;
    split_range(t->bytes, parts, i, b, e);
    std::memcpy(static_cast<char*>(t->dst) + b, static_cast<const char*>(t->src) + b, e - b);
  });
}

// The state of one staged copy, alive until its completion callback.
struct staged_op {
  std::vector<std::shared_ptr<buffer>> slots;
  std::vector<memcpy_task> tasks;
  std::vector<std::pair<cudart::device_context*, cudaEvent_t>> events;

  ~staged_op() {
    for (auto& [ctx, e] : events)
      ctx->release_event(e);
  }
  cudaEvent_t event(cudart::device_context& c) {
    events.emplace_back(&c, nullptr);
    events.back().second = c.acquire_event();
    return events.back().second;
  }
  char* slot(std::size_t i) const { return static_cast<char*>(slots[i]->data()); }
};

// The ring's geometry for `bytes`.
struct ring {
  std::size_t chunk, chunks, nslots;
  explicit ring(std::size_t bytes) {
    chunk = std::min(chunk_bytes(), bytes);
    chunks = (bytes + chunk - 1) / chunk;
    nslots = std::min(ring_slots, chunks);
  }
  std::size_t length(std::size_t i, std::size_t bytes) const {
    return std::min(chunk, bytes - i * chunk);
  }
};

std::shared_ptr<staged_op> make_op(const ring& r) {
  auto op = std::make_shared<staged_op>();
  for (std::size_t i = 0; i < r.nslots; ++i)
    op->slots.push_back(pinned_pool::global().acquire(r.chunk));
  op->tasks.resize(r.chunks);
  op->events.reserve(2 * r.nslots + 2);
  return op;
}

// Hands op to a completion callback on s. If even that fails, work may still be queued that
// uses op's memory: keep it forever rather than free it under the device.
void release_after(const device_stream& s, std::shared_ptr<staged_op> op) {
  try {
    enqueue_callback(s, [op](const status&) {});
  } catch (...) {
    new std::shared_ptr<staged_op>(std::move(op));  // deliberately leaked
    throw;
  }
}

void leak(std::shared_ptr<staged_op> op) noexcept {
  try {
    new std::shared_ptr<staged_op>(std::move(op));  // deliberately leaked, see release_after
  } catch (...) {
  }
}

bool is_pinned(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

int side(const device_stream& s) {
  return s.priority() == stream_priority::high ? 1 : 0;
}

void check_copy_args(const char* what, const void* dst, const void* src, std::size_t bytes) {
  if (bytes && (!dst || !src))
    throw error{errc::invalid_argument,
                std::string{what} + ": null pointer for " + std::to_string(bytes) + " bytes"};
}

void staged_to_device(const device_stream& s, cudart::device_context& c, char* dst, const char* src,
                      std::size_t bytes) {
  const ring r(bytes);
  auto op = make_op(r);
  cudaStream_t cs = cudart::native(s);
  cudaStream_t st = c.staging[side(s)][0];
  thread_pool* pool = &copy_threads();
  try {
    // The host copies run after the caller's earlier work (it may have produced the source).
    cudaEvent_t start = op->event(c);
    KVACTOR_CUDA(cudaEventRecord(start, cs));
    KVACTOR_CUDA(cudaStreamWaitEvent(st, start, 0));
    std::vector<cudaEvent_t> full(r.nslots), emptied(r.nslots);
    for (std::size_t i = 0; i < r.nslots; ++i) {
      full[i] = op->event(c);
      emptied[i] = op->event(c);
    }
    for (std::size_t i = 0; i < r.chunks; ++i) {
      const std::size_t k = i % r.nslots, off = i * r.chunk, len = r.length(i, bytes);
      if (i >= r.nslots) KVACTOR_CUDA(cudaStreamWaitEvent(st, emptied[k], 0));
      op->tasks[i] = memcpy_task{op->slot(k), src + off, len, pool};
      KVACTOR_CUDA(cudaLaunchHostFunc(st, run_memcpy, &op->tasks[i]));
      KVACTOR_CUDA(cudaEventRecord(full[k], st));
      KVACTOR_CUDA(cudaStreamWaitEvent(cs, full[k], 0));
      KVACTOR_CUDA(cudaMemcpyAsync(dst + off, op->slot(k), len, cudaMemcpyHostToDevice, cs));
      KVACTOR_CUDA(cudaEventRecord(emptied[k], cs));
    }
  } catch (...) {
    leak(std::move(op));
    throw;
  }
  release_after(s, std::move(op));
}

void staged_to_host(const device_stream& s, cudart::device_context& c, char* dst, const char* src,
                    std::size_t bytes) {
  const ring r(bytes);
  auto op = make_op(r);
  cudaStream_t cs = cudart::native(s);
  cudaStream_t st = c.staging[side(s)][0];
  thread_pool* pool = &copy_threads();
  try {
    std::vector<cudaEvent_t> full(r.nslots), emptied(r.nslots);
    for (std::size_t i = 0; i < r.nslots; ++i) {
      full[i] = op->event(c);
      emptied[i] = op->event(c);
    }
    for (std::size_t i = 0; i < r.chunks; ++i) {
      const std::size_t k = i % r.nslots, off = i * r.chunk, len = r.length(i, bytes);
      if (i >= r.nslots) KVACTOR_CUDA(cudaStreamWaitEvent(cs, emptied[k], 0));
      KVACTOR_CUDA(cudaMemcpyAsync(op->slot(k), src + off, len, cudaMemcpyDeviceToHost, cs));
      KVACTOR_CUDA(cudaEventRecord(full[k], cs));
      KVACTOR_CUDA(cudaStreamWaitEvent(st, full[k], 0));
      op->tasks[i] = memcpy_task{dst + off, op->slot(k), len, pool};
      KVACTOR_CUDA(cudaLaunchHostFunc(st, run_memcpy, &op->tasks[i]));
      KVACTOR_CUDA(cudaEventRecord(emptied[k], st));
    }
    // The caller's later work (and callbacks) see the host bytes written.
    cudaEvent_t done = op->event(c);
    KVACTOR_CUDA(cudaEventRecord(done, st));
    KVACTOR_CUDA(cudaStreamWaitEvent(cs, done, 0));
  } catch (...) {
    leak(std::move(op));
    throw;
  }
  release_after(s, std::move(op));
}

// Device src (device sd) -> device dst (device dd) through pinned slots, on internal streams
// x (of sd) and y (of dd); ordered after s's earlier work and before its later work.
void staged_between_devices(const device_stream& s, char* dst, int dd, const char* src, int sd,
                            std::size_t bytes) {
  auto& cs_ctx = cudart::context(s.device().index());
  auto& cx = cudart::context(sd);
  auto& cy = cudart::context(dd);
  const ring r(bytes);
  auto op = make_op(r);
  cudaStream_t cs = cudart::native(s);
  cudaStream_t x = cx.staging[side(s)][0];
  cudaStream_t y = cy.staging[side(s)][1];
  try {
    cudart::device_guard g(s.device().index());
    cudaEvent_t start = op->event(cs_ctx);
    KVACTOR_CUDA(cudaEventRecord(start, cs));
    g.set(sd);
    KVACTOR_CUDA(cudaStreamWaitEvent(x, start, 0));
    std::vector<cudaEvent_t> full(r.nslots), emptied(r.nslots);
    for (std::size_t i = 0; i < r.nslots; ++i) {
      full[i] = op->event(cx);
      emptied[i] = op->event(cy);
    }
    for (std::size_t i = 0; i < r.chunks; ++i) {
      const std::size_t k = i % r.nslots, off = i * r.chunk, len = r.length(i, bytes);
      g.set(sd);
      if (i >= r.nslots) KVACTOR_CUDA(cudaStreamWaitEvent(x, emptied[k], 0));
      KVACTOR_CUDA(cudaMemcpyAsync(op->slot(k), src + off, len, cudaMemcpyDeviceToHost, x));
      KVACTOR_CUDA(cudaEventRecord(full[k], x));
      g.set(dd);
      KVACTOR_CUDA(cudaStreamWaitEvent(y, full[k], 0));
      KVACTOR_CUDA(cudaMemcpyAsync(dst + off, op->slot(k), len, cudaMemcpyHostToDevice, y));
      KVACTOR_CUDA(cudaEventRecord(emptied[k], y));
    }
    cudaEvent_t done = op->event(cy);
    KVACTOR_CUDA(cudaEventRecord(done, y));
    g.set(s.device().index());
    KVACTOR_CUDA(cudaStreamWaitEvent(cs, done, 0));
  } catch (...) {
    leak(std::move(op));
    throw;
  }
  release_after(s, std::move(op));
}

}  // namespace

namespace {

// Host <-> device on s: pinned host memory directly, pageable memory staged.
void host_copy(const char* what, const device_stream& s, void* dst, const void* src,
               std::size_t bytes, bool to_device) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::copy_async(s, dst, to_device ? s.device() : device::cpu(), src,
                                            to_device ? device::cpu() : s.device(), bytes);
  cudart::check_stream(s, what);
  check_copy_args(what, dst, src, bytes);
  if (!bytes) return;
  auto& c = cudart::context(s.device().index());
  cudart::device_guard g(c.index);
  if (is_pinned(to_device ? src : dst)) {
    KVACTOR_CUDA(cudaMemcpyAsync(dst, src, bytes,
                                 to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                                 cudart::native(s)));
  } else if (to_device) {
    staged_to_device(s, c, static_cast<char*>(dst), static_cast<const char*>(src), bytes);
  } else {
    staged_to_host(s, c, static_cast<char*>(dst), static_cast<const char*>(src), bytes);
  }
}

}  // namespace

void to_device_async(const device_stream& s, void* dst, const void* host_src, std::size_t bytes) {
  host_copy("to_device_async", s, dst, host_src, bytes, true);
}

void to_host_async(const device_stream& s, void* host_dst, const void* src, std::size_t bytes) {
  host_copy("to_host_async", s, host_dst, src, bytes, false);
}

void copy_async(const device_stream& s, void* dst, device dst_dev, const void* src, device src_dev,
                std::size_t bytes) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::copy_async(s, dst, dst_dev, src, src_dev, bytes);
  cudart::check_stream(s, "copy_async");
  check_copy_args("copy_async", dst, src, bytes);
  const device sdev = s.device();
  if (dst_dev.is_cpu() && src_dev.is_cpu())
    throw error{errc::invalid_argument, "copy_async: cpu to cpu is not a device copy"};
  if (src_dev.is_cpu() || dst_dev.is_cpu()) {
    const device cuda_side = src_dev.is_cpu() ? dst_dev : src_dev;
    if (cuda_side != sdev)
      throw error{errc::invalid_argument, "copy_async between cpu and " + cuda_side.to_string() +
                                              " on a stream of " + sdev.to_string()};
    if (src_dev.is_cpu())
      to_device_async(s, dst, src, bytes);
    else
      to_host_async(s, dst, src, bytes);
    return;
  }
  if (sdev != src_dev && sdev != dst_dev)
    throw error{errc::invalid_argument, "copy_async from " + src_dev.to_string() + " to " +
                                            dst_dev.to_string() + " on a stream of " +
                                            sdev.to_string()};
  check_cuda_device(src_dev);
  check_cuda_device(dst_dev);
  if (!bytes) return;
  const int sd = src_dev.index(), dd = dst_dev.index();
  const bool forced = forced_staged.load(std::memory_order_relaxed);
  cudart::device_guard g(sdev.index());
  if (!forced && sd == dd) {
    KVACTOR_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cudart::native(s)));
    return;
  }
  if (!forced && cudart::peer_copy_possible(sd, dd)) {
    KVACTOR_CUDA(cudaMemcpyPeerAsync(dst, dd, src, sd, bytes, cudart::native(s)));
    return;
  }
  staged_between_devices(s, static_cast<char*>(dst), dd, static_cast<const char*>(src), sd, bytes);
}

namespace detail {
void force_staged_device_copies(bool on) noexcept {
  forced_staged.store(on, std::memory_order_relaxed);
}
void set_staging_chunk_bytes(std::size_t bytes) noexcept {
  chunk_override.store(bytes, std::memory_order_relaxed);
}
}  // namespace detail

}  // namespace kvactor::device_kernels
