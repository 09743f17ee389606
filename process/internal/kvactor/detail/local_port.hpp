// A TCP port for a cluster about to be started on this machine (the tests, bench_dist and
// kvactor-launch pick the scheduler's port with it).
//
// Why not bind port 0 and use what the kernel gives: that port comes from the ephemeral range,
// and until the scheduler binds it, any other process's bind(0) or outgoing connection may be
// given the same port. Under a parallel test run that happened: the scheduler could not
// listen, and the nodes reached another test's listener. A port outside the ephemeral range is
// never handed out that way; only a process that names it explicitly can take it.
//
// Thread-safety: may be called from any thread at the same time.
#pragma once

namespace kvactor::detail {

/// A port from outside the kernel's ephemeral range (net.ipv4.ip_local_port_range) that no
/// socket on any address of this machine is bound to now, chosen at random so that concurrent
/// callers rarely pick the same. Where the ephemeral range leaves no room above 10000: a port
/// the kernel picks. -1 (errno set) on failure.
int unused_tcp_port();

}  // namespace kvactor::detail
