#pragma once
// Graceful stop of `divprune run` on SIGTERM / SIGUSR1 (Slurm: preemption, `scancel --signal`, the warning
// before the time limit, forwarded by slurm/*.sbatch).
//
// The handler only sets a flag (nothing else is async-signal-safe). The coordinator reads it between work
// units: the work queue (parallel/work_queue.hpp) hands out no further item once it is set, lets the items in
// flight finish and be archived (an archive write is never interrupted), and then every rank throws
// StopRequested at the same point. `divprune run` turns that into exit code kExitInterrupted, which the sbatch
// scripts map to `scontrol requeue`; the next start resumes from the archive.
#include <stdexcept>
#include <string>

namespace divprune {

// EX_TEMPFAIL (sysexits.h): "interrupted, try again": the archive is consistent and a rerun resumes it.
inline constexpr int kExitInterrupted = 75;
// Interrupted as above, but this start archived nothing (no plan, no finished stage): restarting it the same
// way may never get further (a work unit longer than the warning before the time limit). slurm/common.sh
// requeues on it a limited number of times in a row.
inline constexpr int kExitInterruptedNoProgress = 76;

// Installs the flag-setting handler for SIGTERM and SIGUSR1 (SA_RESTART, so system calls in flight resume).
void install_stop_handlers();
// True once a stop signal arrived in this process (or request_stop() was called).
bool stop_requested();
// The signal that set the flag (0 when none, or set by request_stop()).
int stop_signal_number();
// Sets the flag as a signal would (tests; a stage that decides to stop).
void request_stop();
// Clears the flag (tests).
void reset_stop_request();

// Records that this process archived a unit of work (a plan, a finished stage) since it started; the exit code
// of an interrupted run says whether it did.
void note_progress();
bool progress_made();

// Thrown identically on every rank once the coordinator decided to stop (never on one rank alone).
class StopRequested : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace divprune
