#pragma once
// One error header for the whole project. Three kinds of failure exist:
//  - InputError: the user's input is wrong (a path, a file's contents, a config key, a plan). The CLI prints
//    the message on one line and exits with code 2. Messages name the file or key and what was expected.
//  - IoError: writing an output failed (creating, writing, flushing or closing an HDF5 object of the run
//    archive: a full disk, a lost file system). Not the user's input, not a broken invariant. Exit 3.
//  - InternalError: a broken invariant or a failed library call (MPI, CUDA, cuBLAS, NCCL). Exit 1.
// Both carry the rank that raised them so that a message from a multi-rank run says where it came from.
// Nothing calls exit() inside the library: other ranks would hang in collectives. main() catches and,
// under MPI, aborts the whole job.
#include <stdexcept>
#include <string>

namespace divprune {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Process exit codes of the error kinds (src/cli/main.cpp, parallel/topology.hpp: collective_step).
inline constexpr int kExitInternal = 1;
inline constexpr int kExitInput = 2;
inline constexpr int kExitIo = 3;
// The exit code of an exception: kExitInput for InputError, kExitIo for IoError, kExitInternal otherwise.
int exit_code_for(const std::exception& e);

// An error every rank of a communicator agreed on (parallel/topology.hpp: collective_step). main() prints it
// once, on the coordinator, and every rank exits with `exit_code` (exit_code_for of the original error).
class CollectiveError : public std::runtime_error {
 public:
  CollectiveError(const std::string& message, int exit_code) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// The world rank reported in error messages; set once after MPI is initialised (-1: not under MPI).
void set_error_rank(int rank);
int error_rank();

[[noreturn]] void throw_internal(const char* statement, const std::string& detail, const char* file, int line);

}  // namespace divprune

// EXPECTS: an internal precondition. For user input, throw InputError with the file/key instead.
#define EXPECTS(cond, msg)                                                    \
  do {                                                                        \
    if (!(cond)) ::divprune::throw_internal(#cond, (msg), __FILE__, __LINE__); \
  } while (0)

// CHECK_MPI: every MPI call goes through this; MPI's error string becomes part of the exception.
#define CHECK_MPI(call)                                                                          \
  do {                                                                                           \
    int divprune_mpi_rc_ = (call);                                                               \
    if (divprune_mpi_rc_ != 0) ::divprune::throw_internal(#call, ::divprune::mpi_error_string(divprune_mpi_rc_), __FILE__, __LINE__); \
  } while (0)

namespace divprune {
std::string mpi_error_string(int code);
}
