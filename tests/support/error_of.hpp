#pragma once
// The message of the InputError a callable throws, for tests that check error texts.
#include <string>

#include "core/errors.hpp"

namespace divprune::testing_support {

// e.what() of the InputError `f` throws, "no error" when it throws none (any other exception propagates).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace divprune::testing_support
