#pragma once
// SHA-256 through OpenSSL's libcrypto (Debian libssl-dev): plan identities in the archive (hash of the
// canonical plan YAML) and the model checksum (hash of the checkpoint's headers and file sizes).
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace divprune {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();  // 64 lowercase hex characters

 private:
  void* context_ = nullptr;  // EVP_MD_CTX
};

std::string sha256_hex(std::string_view text);

}  // namespace divprune
