#include "core/sha256.hpp"

#include <openssl/evp.h>

#include "core/errors.hpp"

namespace divprune {

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  EXPECTS(context_ != nullptr && EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(context_), EVP_sha256(), nullptr) == 1,
          "OpenSSL SHA-256 initialisation");
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context_)); }

void Sha256::update(const void* data, size_t size) {
  EXPECTS(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context_), data, size) == 1, "OpenSSL SHA-256 update");
}

std::array<uint8_t, 32> Sha256::digest() {
  std::array<uint8_t, 32> out{};
  unsigned int length = 0;
  EXPECTS(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(context_), out.data(), &length) == 1 && length == out.size(),
          "OpenSSL SHA-256 final");
  return out;
}

std::string Sha256::hex_digest() {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint8_t byte : digest()) {
    out.push_back(hex[byte >> 4]);
    out.push_back(hex[byte & 15]);
  }
  return out;
}

std::string sha256_hex(std::string_view text) {
  Sha256 h;
  h.update(text);
  return h.hex_digest();
}

}  // namespace divprune
