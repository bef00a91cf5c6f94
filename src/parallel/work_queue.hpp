#pragma once
// A dynamic work queue over replicas (DESIGN: "coordinator ──work queue (MPI)──► replicas ──results──► coordinator").
//
// Items are indices 0..items-1, known to every rank. The coordinator (world rank 0) owns the counter and hands
// out the next index to the replica leader that asks; each index goes to exactly one replica. A leader
// broadcasts its index inside its tensor-parallel group, so every rank of the replica works on the same item.
// Results (opaque byte payloads) travel from replica leaders back to the coordinator, which hands them to
// the `on_result` callback (e.g. the archive writer). The coordinator is also replica 0's leader: it serves
// other leaders whenever it calls poll() (between its own work items, or between chunks of one), and
// drains every remaining request in finish().
//
// Messages use a private duplicate of MPI_COMM_WORLD, so they never match anyone else's receives. Only the
// calling thread uses MPI (call next/submit/poll/finish from the thread that initialised MPI).
//
//   WorkQueue queue(topology, plans.size(), [&](int64_t item, int replica, Bytes payload) { write(...); });
//   while (auto item = queue.next()) {
//     Bytes result = evaluate(*item, [&] { queue.poll(); });
//     queue.submit(*item, std::move(result));        // collective over the tp group; the leader sends
//   }
//   queue.finish();                                   // collective over MPI_COMM_WORLD
//
// Graceful stop (core/stop_signal.hpp): once the coordinator's stop flag is set (SIGTERM / SIGUSR1), it hands
// out no further item; the items in flight finish and their results are delivered as usual, and finish()
// throws StopRequested on every rank. Every stage spreads its plans or work units through this queue, so this
// one check stops them all between units, never inside an archive write.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/errors.hpp"
#include "core/stop_signal.hpp"
#include "parallel/bytes.hpp"
#include "parallel/topology.hpp"

namespace divprune {

class WorkQueue {
 public:
  // Called on the coordinator only, for every submitted result (its own ones too), in arrival order.
  using ResultHandler = std::function<void(int64_t item, int replica, Bytes&& payload)>;

  // Collective over MPI_COMM_WORLD (duplicates it). `items` must be equal on every rank.
  WorkQueue(const Topology& topology, int64_t items, ResultHandler on_result = {});
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Collective over this replica's tp group: the next item for this replica, or nullopt when none is left.
  std::optional<int64_t> next();
  // Collective over the tp group: the leader delivers `payload` (other ranks' payloads are ignored) to the
  // coordinator's handler. Call it before asking for the next item.
  void submit(int64_t item, Bytes payload);
  // Coordinator: answers pending requests and receives pending results without blocking. Elsewhere: no-op.
  void poll();
  // Collective over MPI_COMM_WORLD, after next() returned nullopt: the coordinator serves until every other
  // replica leader was told that the queue is empty; then all ranks meet. Throws StopRequested on every rank
  // when the coordinator stopped handing out items because of a stop signal (items were left undone).
  void finish();

  int64_t items() const { return items_; }
  // Coordinator: items handed to each replica so far (replica r at index r).
  const std::vector<int64_t>& handed() const { return handed_; }

 private:
  void serve(bool block);
  int64_t take_next(int replica);

  Topology topology_;
  int64_t items_ = 0;
  ResultHandler on_result_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int64_t next_item_ = 0;          // coordinator: next index to hand out
  int leaders_done_ = 0;           // coordinator: other leaders that were answered "empty"
  std::vector<int64_t> handed_;    // coordinator: per replica
  bool finished_ = false;
  bool stopped_ = false;           // coordinator: an item was refused because a stop was requested
};

}  // namespace divprune
