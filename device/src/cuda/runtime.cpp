// Devices, stream pools, events, completion callbacks (KVACTOR_ENABLE_CUDA=ON build).
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <string>
#include <thread>

#include "../callback_thread.hpp"
#include "common.hpp"

namespace kvactor {

namespace cudart {

std::string describe(cudaError_t e, const char* what) {
  return std::string{what} + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

errc code_of(cudaError_t e) noexcept {
  switch (e) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorCallRequiresNewerDriver:
    case cudaErrorNotSupported:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
      return errc::unsupported;
    default:
      return errc::internal;
  }
}

void fail(cudaError_t e, const char* what) {
  (void)cudaGetLastError();  // clears e if it was not sticky
  throw error{code_of(e), describe(e, what)};
}

device_guard::device_guard(int index) {
  KVACTOR_CUDA(cudaGetDevice(&previous_));
  current_ = previous_;
  set(index);
}

device_guard::~device_guard() {
  if (current_ != previous_ && previous_ >= 0) (void)cudaSetDevice(previous_);
}

void device_guard::set(int index) {
  if (index == current_) return;
  KVACTOR_CUDA(cudaSetDevice(index));
  current_ = index;
}

}  // namespace cudart

namespace {

struct device_census {
  int count = 0;
  std::string why_none;  // the CUDA error when count is 0
};

const device_census& census() {
  static const device_census c = [] {
    device_census r;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      r.why_none = cudart::describe(e, "cudaGetDeviceCount");
      (void)cudaGetLastError();
      n = 0;
    } else if (n == 0) {
      r.why_none = "cudaGetDeviceCount found none";
    }
    r.count = n;
    return r;
  }();
  return c;
}

std::size_t env_streams() {
  std::size_t n = 4;
  if (const char* env = std::getenv("KVACTOR_CUDA_STREAMS")) {
    char* end = nullptr;
    const unsigned long v = std::strtoul(env, &end, 10);
    if (end != env && v >= 1 && v <= 64) n = v;
  }
  return n;
}

struct context_slot {
  std::once_flag once;
  cudart::device_context ctx;
};

// One slot per device, made with the census; never destroyed (streams and events must not be
// destroyed while the CUDA runtime shuts down at exit).
std::vector<context_slot>& slots() {
  static auto* v = new std::vector<context_slot>(static_cast<std::size_t>(census().count));
  return *v;
}

void init_context(cudart::device_context& c, int index) {
  c.index = index;
  cudart::device_guard g(index);
  KVACTOR_CUDA(cudaDeviceGetStreamPriorityRange(&c.least_priority, &c.greatest_priority));
  KVACTOR_CUDA(cudaDeviceGetAttribute(&c.sm_count, cudaDevAttrMultiProcessorCount, index));
  if (c.sm_count < 1) c.sm_count = 1;
  std::size_t free_bytes = 0;
  KVACTOR_CUDA(cudaMemGetInfo(&free_bytes, &c.total_memory));
  const int prio[2] = {c.least_priority, c.greatest_priority};
  const std::size_t n = streams_per_priority();
  for (int p = 0; p < 2; ++p) {
    c.streams[p].clear();  // a failed earlier attempt may have left some
    for (std::size_t i = 0; i < n; ++i) {
      cudaStream_t s = nullptr;
      KVACTOR_CUDA(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, prio[p]));
      c.streams[p].push_back(s);
    }
    for (auto& side : c.staging[p])
      KVACTOR_CUDA(cudaStreamCreateWithPriority(&side, cudaStreamNonBlocking, prio[p]));
  }
  KVACTOR_CUDA(cudaStreamCreateWithPriority(&c.blocking, cudaStreamNonBlocking, prio[0]));
}

// Runs on the CUDA driver's thread: no CUDA calls here (the error text is made later).
void CUDART_CB on_stream_done(cudaStream_t, cudaError_t e, void* p) {
  std::unique_ptr<detail::awaited_ptr> box(static_cast<detail::awaited_ptr*>(p));
  detail::signal_awaited(**box, static_cast<int>(e));
}

}  // namespace

namespace cudart {

cudaEvent_t device_context::acquire_event() {
  {
    std::lock_guard<std::mutex> g(event_mu);
    if (!free_events.empty()) {
      cudaEvent_t e = free_events.back();
      free_events.pop_back();
      return e;
    }
  }
  device_guard g(index);
  cudaEvent_t e = nullptr;
  KVACTOR_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

void device_context::release_event(cudaEvent_t e) noexcept {
  try {
    std::lock_guard<std::mutex> g(event_mu);
    free_events.push_back(e);
  } catch (...) {
    (void)cudaEventDestroy(e);
  }
}

device_context& context(int index) {
  check_cuda_device(device::cuda(index));
  auto& slot = slots()[static_cast<std::size_t>(index)];
  std::call_once(slot.once, [&] { init_context(slot.ctx, index); });
  return slot.ctx;
}

void check_stream(const device_stream& s, const char* what) {
  if (s.valid()) return;
  if (census().count == 0)
    throw error{errc::unsupported, std::string{what} +
                                       " needs a CUDA device, and this process has none (" +
                                       census().why_none + ")"};
  throw error{errc::invalid_argument, std::string{what} + ": not a valid device stream"};
}

bool peer_copy_possible(int a, int b) {
  if (a == b) return false;
  static std::mutex mu;
  static auto* known = new std::vector<signed char>();  // -1 unknown, 0 no, 1 yes
  const int n = census().count;
  std::lock_guard<std::mutex> g(mu);
  if (known->empty()) known->assign(static_cast<std::size_t>(n) * n, -1);
  auto& k = (*known)[static_cast<std::size_t>(a) * n + b];
  if (k < 0) {
    int ab = 0, ba = 0;
    KVACTOR_CUDA(cudaDeviceCanAccessPeer(&ab, a, b));
    KVACTOR_CUDA(cudaDeviceCanAccessPeer(&ba, b, a));
    const bool ok = ab && ba;
    if (ok) {
      device_guard dg(a);
      cudaError_t e = cudaDeviceEnablePeerAccess(b, 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError(), e = cudaSuccess;
      if (e != cudaSuccess) fail(e, "cudaDeviceEnablePeerAccess");
      dg.set(b);
      e = cudaDeviceEnablePeerAccess(a, 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError(), e = cudaSuccess;
      if (e != cudaSuccess) fail(e, "cudaDeviceEnablePeerAccess");
    }
    k = ok ? 1 : 0;
    (*known)[static_cast<std::size_t>(b) * n + a] = k;
  }
  return k == 1;
}

}  // namespace cudart

bool cuda_compiled() noexcept {
  return true;
}

namespace detail {
int native_device_count() noexcept {
  try {
    return census().count;
  } catch (...) {
    return 0;
  }
}

}  // namespace detail

int cuda_device_count() {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::device_count();
  return detail::native_device_count();
}

bool cuda_emulated() {
  return kvactor::detail::emu::active();
}

bool cuda_available() {
  return cuda_device_count() > 0;
}

void check_cuda_device(device d) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::check_device(d);
  if (d.is_cpu()) throw error{errc::invalid_argument, d.to_string() + " is not a CUDA device"};
  const auto& c = census();
  if (c.count == 0)
    throw error{errc::unsupported, "tensors on " + d.to_string() +
                                       " need a CUDA device, and this process has none (" +
                                       c.why_none + ")"};
  if (d.index() < 0 || d.index() >= c.count)
    throw error{errc::invalid_argument, d.to_string() + " does not exist: this process has " +
                                            std::to_string(c.count) + " CUDA device" +
                                            (c.count == 1 ? "" : "s")};
}

std::string cuda_device_name(device d) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::device_name(d);
  check_cuda_device(d);
  cudaDeviceProp prop{};
  KVACTOR_CUDA(cudaGetDeviceProperties(&prop, d.index()));
  return prop.name;
}

std::size_t streams_per_priority() noexcept {
  static const std::size_t n = env_streams();
  return n;
}

device_stream get_stream(device d, stream_priority p, std::size_t hint) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::get_stream(d, p, hint);
  auto& c = cudart::context(d.index());
  const auto& pool = c.streams[p == stream_priority::high ? 1 : 0];
  return detail::stream_access::make(pool[hint % pool.size()], d.index(), p);
}

int native_priority(const device_stream& s) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::native_priority(s);
  cudart::check_stream(s, "native_priority");
  int prio = 0;
  KVACTOR_CUDA(cudaStreamGetPriority(cudart::native(s), &prio));
  return prio;
}

void enqueue_callback(const device_stream& s, std::function<void(const status&)> fn) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::enqueue_callback(s, std::move(fn));
  cudart::check_stream(s, "enqueue_callback");
  if (!fn) throw error{errc::invalid_argument, "enqueue_callback: empty function"};
  // The callback thread polls an event recorded after the work while the completion is young
  // (callback_thread.hpp), and the driver's callback tells it otherwise: cudaStreamAddCallback
  // rather than cudaLaunchHostFunc, since it runs exactly once even after a device error and
  // says so, where a host function would silently never run.
  auto& ctx = cudart::context(s.device().index());
  cudart::device_guard g(ctx.index);
  auto c = std::make_shared<detail::awaited_completion>();
  c->order = reinterpret_cast<std::uintptr_t>(cudart::native(s));
  auto box = std::make_unique<detail::awaited_ptr>(c);
  cudaEvent_t ev = ctx.acquire_event();
  try {
    c->poll = [ev] { return cudaEventQuery(ev) == cudaSuccess; };
    c->fn = [fn = std::move(fn), ev, ctx = &ctx](int e) {
      ctx->release_event(ev);
      const auto err = static_cast<cudaError_t>(e);
      if (err == cudaSuccess)
        fn(status{});
      else
        fn(status{cudart::code_of(err), cudart::describe(err, "device work on the stream failed")});
    };
    KVACTOR_CUDA(cudaEventRecord(ev, cudart::native(s)));
    KVACTOR_CUDA(cudaStreamAddCallback(cudart::native(s), on_stream_done, box.get(), 0));
  } catch (...) {
    ctx.release_event(ev);
    throw;
  }
  static_cast<void>(box.release());  // the driver's callback owns it now
  // Nothing can fail from here: the driver may already have signalled c, which then runs as
  // soon as it is posted.
  detail::post_awaited(std::move(c));
}

void stream_wait(const device_stream& waiter, const device_stream& on) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::stream_wait(waiter, on);
  cudart::check_stream(waiter, "stream_wait");
  cudart::check_stream(on, "stream_wait");
  if (waiter == on) return;
  auto& c = cudart::context(on.device().index());
  cudaEvent_t e = c.acquire_event();
  try {
    cudart::device_guard g(on.device().index());
    KVACTOR_CUDA(cudaEventRecord(e, cudart::native(on)));
    g.set(waiter.device().index());
    KVACTOR_CUDA(cudaStreamWaitEvent(cudart::native(waiter), e, 0));
  } catch (...) {
    c.release_event(e);
    throw;
  }
  // The wait uses the state captured at the time it was enqueued; later records of the
  // event do not change it, so the event can be reused at once.
  c.release_event(e);
}

void synchronize(const device_stream& s) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::synchronize(s);
  cudart::check_stream(s, "synchronize");
  cudart::device_guard g(s.device().index());
  KVACTOR_CUDA(cudaStreamSynchronize(cudart::native(s)));
}

namespace detail {
device_stream blocking_stream(device d) {
  if (emu::active()) return emu::blocking_stream(d);
  auto& c = cudart::context(d.index());
  return stream_access::make(c.blocking, d.index(), stream_priority::normal);
}
}  // namespace detail

}  // namespace kvactor
