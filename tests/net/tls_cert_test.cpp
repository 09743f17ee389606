// TLS with certificates instead of the secret-derived PSK (identity::tls_cert_file,
// tls_key_file, tls_ca_file): nodes whose certificates the same CA signed exchange messages;
// a certificate from another CA, or none, fails the TLS handshake (unauthenticated) in both
// directions; incomplete or unusable files are refused before any connection (invalid_argument
// naming the file).
#include <gtest/gtest.h>

#include "net_test_util.hpp"
#include "test_certs.hpp"

namespace kvactor::net {
namespace {

using namespace testing;
using kvactor::testing::test_certs;

identity cert_ident(std::string role, std::int64_t rank, const test_certs::node_files& f,
                    const std::string& ca) {
  identity id = ident(std::move(role), rank);
  id.tls = true;
  id.tls_cert_file = f.cert;
  id.tls_key_file = f.key;
  id.tls_ca_file = ca;
  return id;
}

caps test_caps() {
  caps c;
  c.handshake_timeout = 5000ms;
  return c;
}

TEST(TlsCertificates, NodesOfOneCaExchangeMessages) {
  test_certs certs;
  const std::string ca = certs.make_ca("cluster");
  event_log server_log;
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, cert_ident("server", 0, certs.make_node("s0", ca), ca),
                            test_caps(), echoing(&server_log));
  ASSERT_TRUE(l) << l.error().to_string();
  runtime rt;
  inbox box;
  auto c = connect_sync(rt, (*l)->port(), cert_ident("worker", 2, certs.make_node("w2", ca), ca),
                        test_caps(), recording(nullptr, &box));
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ((*c)->peer().role, "server");
  const bytes payload = pattern(3 << 20, 5);
  outgoing o;
  o.type = 20;
  o.id = 7;
  o.meta = to_bytes("hello");
  o.payload = payload.data();
  o.payload_size = payload.size();
  (*c)->send(std::move(o));
  auto m = box.pop();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id, 7u);
  EXPECT_EQ(to_string(m->meta), "hello");
  ASSERT_EQ(m->payload_size, payload.size());
  EXPECT_EQ(std::memcmp(m->payload_data, payload.data(), payload.size()), 0);
  ASSERT_TRUE(server_log.wait_opens(1));
  EXPECT_EQ(server_log.open_at(0)->peer().rank, 2);
}

// Either side holding a certificate of another CA: the handshake fails, nothing opens.
TEST(TlsCertificates, CertificateOfAnotherCaIsRefusedBothWays) {
  test_certs certs;
  const std::string ca = certs.make_ca("cluster");
  const std::string other = certs.make_ca("stranger");
  for (const bool stranger_connects : {true, false}) {
    SCOPED_TRACE(stranger_connects ? "stranger connects" : "stranger listens");
    // The stranger trusts the cluster's CA but holds a certificate of its own CA.
    const auto server_files = certs.make_node("s", stranger_connects ? ca : other);
    const auto client_files = certs.make_node("c", stranger_connects ? other : ca);
    event_log server_log;
    runtime server_rt;
    auto l = server_rt.listen("127.0.0.1", 0, cert_ident("server", 0, server_files, ca),
                              test_caps(), recording(&server_log, nullptr));
    ASSERT_TRUE(l) << l.error().to_string();
    expect_tls_refusal((*l)->port(), cert_ident("worker", 0, client_files, ca), test_caps(),
                       server_log);
  }
}

// A node with the PSK only (the right secret, no certificate) cannot join a certificate
// listener: the secret alone is not enough once certificates are in use.
TEST(TlsCertificates, PskPeerOfACertificateListenerIsRefused) {
  test_certs certs;
  const std::string ca = certs.make_ca("cluster");
  event_log server_log;
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, cert_ident("server", 0, certs.make_node("s0", ca), ca),
                            test_caps(), recording(&server_log, nullptr));
  ASSERT_TRUE(l) << l.error().to_string();
  runtime rt;
  identity psk_only = ident("worker", 0);
  psk_only.tls = true;
  auto c = connect_sync(rt, (*l)->port(), psk_only, test_caps(), recording(nullptr, nullptr));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::unauthenticated) << c.error().to_string();
  EXPECT_EQ(server_log.opens(), 0u);
}

TEST(TlsCertificates, IncompleteOrUnusableFilesAreRefusedUpFront) {
  test_certs certs;
  const std::string ca = certs.make_ca("cluster");
  const auto node = certs.make_node("n", ca);
  const auto other = certs.make_node("m", ca);
  runtime rt;
  auto refused = [&](identity id, const std::string& names) {
    auto l = rt.listen("127.0.0.1", 0, id, test_caps(), recording(nullptr, nullptr));
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error().code(), errc::invalid_argument) << l.error().to_string();
    EXPECT_NE(l.error().message().find(names), std::string::npos) << l.error().to_string();
  };
  identity only_cert = ident("server", 0);
  only_cert.tls = true;
  only_cert.tls_cert_file = node.cert;
  refused(only_cert, "1 of 3 given");
  identity wrong_key = cert_ident("server", 0, node, ca);
  wrong_key.tls_key_file = other.key;
  refused(wrong_key, other.key);
  identity no_ca = cert_ident("server", 0, node, ca);
  no_ca.tls_ca_file = certs.dir() + "/missing-ca.pem";
  refused(no_ca, "missing-ca.pem");
  identity not_a_cert = cert_ident("server", 0, node, ca);
  not_a_cert.tls_cert_file = node.key;
  refused(not_a_cert, node.key);
}

}  // namespace
}  // namespace kvactor::net
