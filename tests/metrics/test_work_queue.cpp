// WorkQueue under 4 ranks: every item is handed to exactly one replica, every tp rank of a replica sees the
// same items, and every result reaches the coordinator, at tp 1 (4 replicas) and tp 2 (2 replicas).
#include <gtest/gtest.h>
#include <mpi.h>

#include <csignal>
#include <chrono>
#include <map>
#include <thread>

#include "core/stop_signal.hpp"
#include "parallel/topology.hpp"
#include "parallel/work_queue.hpp"

namespace divprune {
namespace {

void check_queue(int tp, int64_t items) {
  Topology topo = make_topology(tp);
  std::map<int64_t, int> received;  // coordinator: item -> replica that delivered it
  std::vector<int64_t> payload_items;
  WorkQueue queue(topo, items, [&](int64_t item, int replica, Bytes&& bytes) {
    ByteReader r(bytes);
    const int64_t echoed = r.get<int64_t>();
    const int from = r.get<int>();
    EXPECT_EQ(echoed, item * item);
    EXPECT_EQ(from, replica);
    EXPECT_EQ(received.count(item), 0u) << "item " << item << " delivered twice";
    received[item] = replica;
  });
  std::vector<int64_t> mine;
  while (auto item = queue.next()) {
    mine.push_back(*item);
    // Uneven work: some replicas are slower, so the dynamic queue gives them fewer items.
    std::this_thread::sleep_for(std::chrono::milliseconds(2 + 3 * topo.replica));
    queue.poll();
    ByteWriter w;
    w.put<int64_t>(*item * *item);
    w.put<int>(topo.replica);
    queue.submit(*item, w.take());
  }
  queue.finish();

  // Every tp rank of a replica saw the same items.
  std::vector<int64_t> leader_items = mine;
  int64_t count = static_cast<int64_t>(mine.size());
  MPI_Bcast(&count, 1, MPI_INT64_T, 0, topo.tp_comm);
  leader_items.resize(static_cast<size_t>(count));
  MPI_Bcast(leader_items.data(), static_cast<int>(count), MPI_INT64_T, 0, topo.tp_comm);
  EXPECT_EQ(mine, leader_items);
  // Across replicas, each item exactly once.
  int64_t local = topo.is_replica_leader() ? static_cast<int64_t>(mine.size()) : 0, total = 0;
  MPI_Allreduce(&local, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, items);
  if (topo.is_coordinator()) {
    EXPECT_EQ(static_cast<int64_t>(received.size()), items);
    for (int64_t i = 0; i < items; ++i) EXPECT_EQ(received.count(i), 1u) << "item " << i << " never delivered";
    int64_t handed = 0;
    for (int64_t h : queue.handed()) handed += h;
    EXPECT_EQ(handed, items);
  }
  free_topology(topo);
}

TEST(WorkQueue, EachItemToExactlyOneReplicaTp1) { check_queue(1, 37); }
TEST(WorkQueue, EachItemToExactlyOneReplicaTp2) { check_queue(2, 23); }
TEST(WorkQueue, FewerItemsThanReplicas) { check_queue(1, 2); }
TEST(WorkQueue, NoItems) { check_queue(2, 0); }

// A stop signal on the coordinator after `stop_after` results: no further item is handed out, every item that
// was handed out is still delivered exactly once, and finish() throws StopRequested on every rank.
void check_stop(int tp, int64_t items, int64_t stop_after) {
  Topology topo = make_topology(tp);
  reset_stop_request();
  std::map<int64_t, int> received;
  WorkQueue queue(topo, items, [&](int64_t item, int, Bytes&&) {
    EXPECT_EQ(received.count(item), 0u) << "item " << item << " delivered twice";
    received[item] = 1;
    if (static_cast<int64_t>(received.size()) == stop_after) raise(SIGTERM);
  });
  while (auto item = queue.next()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    queue.poll();
    queue.submit(*item, Bytes(8, 0));
  }
  bool threw = false;
  try {
    queue.finish();
  } catch (const StopRequested&) {
    threw = true;
  }
  EXPECT_TRUE(threw) << "finish() must throw StopRequested on every rank";
  if (topo.is_coordinator()) {
    EXPECT_EQ(stop_signal_number(), SIGTERM);
    int64_t handed = 0;
    for (int64_t h : queue.handed()) handed += h;
    EXPECT_LT(handed, items) << "items were handed out after the stop";
    EXPECT_GE(static_cast<int64_t>(received.size()), stop_after);
    EXPECT_EQ(static_cast<int64_t>(received.size()), handed) << "a handed-out item was lost";
  }
  reset_stop_request();
  free_topology(topo);
}

TEST(WorkQueue, StopSignalEndsEveryRankCleanly) {
  install_stop_handlers();
  check_stop(1, 200, 5);
  check_stop(2, 200, 3);
  // Only the coordinator's flag counts: a signal on another rank alone does not stop the queue.
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 1) raise(SIGUSR1);
  EXPECT_EQ(stop_requested(), rank == 1);
  if (rank == 1) {
    EXPECT_EQ(stop_signal_number(), SIGUSR1);
  }
  check_queue(1, 11);
  reset_stop_request();
}

}  // namespace
}  // namespace divprune
