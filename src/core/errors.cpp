#include "core/errors.hpp"

#include <fmt/format.h>
#include <mpi.h>

namespace divprune {

namespace {
int g_error_rank = -1;
}

void set_error_rank(int rank) { g_error_rank = rank; }
int error_rank() { return g_error_rank; }

int exit_code_for(const std::exception& e) {
  if (dynamic_cast<const InputError*>(&e) != nullptr) return kExitInput;
  if (dynamic_cast<const IoError*>(&e) != nullptr) return kExitIo;
  return kExitInternal;
}

void throw_internal(const char* statement, const std::string& detail, const char* file, int line) {
  std::string where = g_error_rank >= 0 ? fmt::format(" [rank {}]", g_error_rank) : std::string();
  throw InternalError(fmt::format("{}:{}: `{}` failed: {}{}", file, line, statement, detail, where));
}

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, static_cast<size_t>(length));
}

}  // namespace divprune
