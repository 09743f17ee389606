// Certificates for TLS tests, made at run time (nothing secret in the repository, never
// expired): a CA and node certificates it signs, written as PEM files (mode 0600) into a
// fresh directory under the system's temporary directory, removed with the object.
// Thread-safety: one object per test; not shared.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvactor::testing {

class test_certs {
 public:
  /// Paths of one node's files.
  struct node_files {
    std::string cert;
    std::string key;
  };

  test_certs() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "kvactor-certs-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
  }
  ~test_certs() {
    for (auto& c : cas_) {
      X509_free(c.cert);
      EVP_PKEY_free(c.key);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  test_certs(const test_certs&) = delete;
  test_certs& operator=(const test_certs&) = delete;

  /// A new self-signed CA named `name`; returns its certificate file.
  std::string make_ca(const std::string& name) {
    ca ca_entry;
    ca_entry.key = new_key();
    ca_entry.cert = sign(ca_entry.key, name, nullptr, nullptr, true);
    ca_entry.file = write_cert(name + "-ca.pem", ca_entry.cert);
    cas_.push_back(ca_entry);
    return ca_entry.file;
  }

  /// A node certificate named `name`, signed by the CA whose file make_ca returned.
  node_files make_node(const std::string& name, const std::string& ca_file) {
    for (auto& c : cas_) {
      if (c.file != ca_file) continue;
      EVP_PKEY* key = new_key();
      X509* cert = sign(key, name, c.cert, c.key, false);
      node_files out{write_cert(name + ".pem", cert), write_key(name + ".key", key)};
      X509_free(cert);
      EVP_PKEY_free(key);
      return out;
    }
    throw std::runtime_error("test_certs: unknown CA " + ca_file);
  }

  const std::string& dir() const { return dir_; }

 private:
  struct ca {
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    std::string file;
  };

  static EVP_PKEY* new_key() {
    EVP_PKEY* k = EVP_EC_gen("P-256");
    if (!k) throw std::runtime_error("test_certs: key generation failed");
    return k;
  }

  static void add_ext(X509* x, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!e) throw std::runtime_error("test_certs: bad extension");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
  }

  X509* sign(EVP_PKEY* key, const std::string& name, X509* issuer, EVP_PKEY* issuer_key,
             bool is_ca) {
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME* subject = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject);
    add_ext(x, issuer, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "CA:FALSE");
    add_ext(x, issuer, NID_key_usage,
            is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(x, issuer, NID_subject_key_identifier, "hash");
    if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()))
      throw std::runtime_error("test_certs: signing failed");
    return x;
  }

  std::string open_path(const std::string& name, FILE** f) {
    const std::string path = dir_ + "/" + name;
    *f = std::fopen(path.c_str(), "w");
    if (!*f) throw std::runtime_error("test_certs: cannot write " + path);
    ::chmod(path.c_str(), 0600);
    return path;
  }

  std::string write_cert(const std::string& name, X509* x) {
    FILE* f = nullptr;
    const std::string path = open_path(name, &f);
    PEM_write_X509(f, x);
    std::fclose(f);
    return path;
  }

  std::string write_key(const std::string& name, EVP_PKEY* k) {
    FILE* f = nullptr;
    const std::string path = open_path(name, &f);
    PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    return path;
  }

  std::string dir_;
  std::vector<ca> cas_;
  long serial_ = 0;
};

}  // namespace kvactor::testing
