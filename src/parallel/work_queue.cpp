#include "parallel/work_queue.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

namespace divprune {

namespace {
// Tags on the queue's private communicator.
constexpr int kTagRequest = 1;        // leader -> coordinator: int replica
constexpr int kTagAssign = 2;         // coordinator -> leader: int64 item or -1
constexpr int kTagResultHead = 3;     // leader -> coordinator: int64 {item, bytes}
constexpr int kTagResultBody = 4;     // leader -> coordinator: the payload
}  // namespace

WorkQueue::WorkQueue(const Topology& topology, int64_t items, ResultHandler on_result)
    : topology_(topology), items_(items), on_result_(std::move(on_result)) {
  EXPECTS(items >= 0, "WorkQueue: negative item count");
  CHECK_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
  handed_.assign(static_cast<size_t>(topology.replicas), 0);
}

WorkQueue::~WorkQueue() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

int64_t WorkQueue::take_next(int replica) {
  if (next_item_ >= items_) return -1;
  if (stop_requested()) {
    stopped_ = true;
    return -1;
  }
  ++handed_[static_cast<size_t>(replica)];
  return next_item_++;
}

std::optional<int64_t> WorkQueue::next() {
  int64_t item = -1;
  if (topology_.is_coordinator()) {
    poll();
    item = take_next(0);
  } else if (topology_.is_replica_leader()) {
    int replica = topology_.replica;
    CHECK_MPI(MPI_Send(&replica, 1, MPI_INT, 0, kTagRequest, comm_));
    CHECK_MPI(MPI_Recv(&item, 1, MPI_INT64_T, 0, kTagAssign, comm_, MPI_STATUS_IGNORE));
  }
  if (topology_.tp > 1) CHECK_MPI(MPI_Bcast(&item, 1, MPI_INT64_T, 0, topology_.tp_comm));
  if (item < 0) return std::nullopt;
  return item;
}

void WorkQueue::submit(int64_t item, Bytes payload) {
  if (!topology_.is_replica_leader()) return;
  if (topology_.is_coordinator()) {
    if (on_result_) on_result_(item, 0, std::move(payload));
    return;
  }
  int64_t head[2] = {item, static_cast<int64_t>(payload.size())};
  CHECK_MPI(MPI_Send(head, 2, MPI_INT64_T, 0, kTagResultHead, comm_));
  // Large payloads go in pieces below INT_MAX bytes.
  const size_t piece = size_t{1} << 30;
  for (size_t at = 0; at < payload.size(); at += piece) {
    const int count = static_cast<int>(std::min(piece, payload.size() - at));
    CHECK_MPI(MPI_Send(payload.data() + at, count, MPI_CHAR, 0, kTagResultBody, comm_));
  }
}

void WorkQueue::serve(bool block) {
  while (true) {
    MPI_Status status;
    int flag = 0;
    if (block) {
      CHECK_MPI(MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &status));
      flag = 1;
    } else {
      CHECK_MPI(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &status));
    }
    if (!flag) return;
    const int source = status.MPI_SOURCE;
    if (status.MPI_TAG == kTagRequest) {
      int replica = 0;
      CHECK_MPI(MPI_Recv(&replica, 1, MPI_INT, source, kTagRequest, comm_, MPI_STATUS_IGNORE));
      int64_t item = take_next(replica);
      if (item < 0) ++leaders_done_;
      CHECK_MPI(MPI_Send(&item, 1, MPI_INT64_T, source, kTagAssign, comm_));
    } else if (status.MPI_TAG == kTagResultHead) {
      int64_t head[2];
      CHECK_MPI(MPI_Recv(head, 2, MPI_INT64_T, source, kTagResultHead, comm_, MPI_STATUS_IGNORE));
      Bytes payload(static_cast<size_t>(head[1]));
      const size_t piece = size_t{1} << 30;
      for (size_t at = 0; at < payload.size(); at += piece) {
        const int count = static_cast<int>(std::min(piece, payload.size() - at));
        CHECK_MPI(MPI_Recv(payload.data() + at, count, MPI_CHAR, source, kTagResultBody, comm_, MPI_STATUS_IGNORE));
      }
      if (on_result_) on_result_(head[0], source / topology_.tp, std::move(payload));
    } else {
      throw InternalError("WorkQueue: unexpected message tag " + std::to_string(status.MPI_TAG));
    }
    // A blocking serve handles one message per call; the caller loops on its own condition.
    if (block) return;
  }
}

void WorkQueue::poll() {
  if (topology_.is_coordinator() && !finished_) serve(false);
}

void WorkQueue::finish() {
  if (topology_.is_coordinator()) {
    // Each leader sends its last result before its last request, so once every leader was answered
    // "empty", every result has arrived.
    while (leaders_done_ < topology_.replicas - 1) serve(true);
    finished_ = true;
  }
  // All ranks meet and learn whether the coordinator stopped early (its flag is the only one that counts:
  // every rank must leave the stage at the same point).
  int stopped = stopped_ ? 1 : 0;
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &stopped, 1, MPI_INT, MPI_MAX, comm_));
  if (stopped)
    throw StopRequested(fmt::format("stop requested: {} of {} work items handed out, the rest left for the next run",
                                    next_item_, items_));
}

}  // namespace divprune
