// leader_contender: one candidate in a leader election, for kube_leader_test.
//
//   kube_leader_contender <kubeconfig> <namespace> <lease> <id> <out file>
//                         <lease ms> <renew ms> <retry ms>
//
// Appends lines "<WORD> <id> <unix ms>" to <out file> (O_APPEND, one write
// per line): STARTED, LEADER (became leader), CLAIM (every 50 ms while
// IsLeader()), LOST (lost the lease; then exits 3), RELEASED (after SIGTERM /
// SIGINT released the lease; exits 0).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "flowrun/kube/client.h"
#include "flowrun/kube/config.h"
#include "flowrun/kube/leader_election.h"

namespace {

int out_fd = -1;
std::string id;

void Line(const char* word) {
  long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count();
  std::string s = std::string(word) + " " + id + " " + std::to_string(ms) + "\n";
  (void)!write(out_fd, s.data(), s.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::cerr << "usage: kube_leader_contender <kubeconfig> <ns> <lease> <id> <out> <lease ms> <renew ms> <retry ms>\n";
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // SIGTERM/SIGINT are taken by sigwait in main (blocked in every thread).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  id = argv[4];
  out_fd = open(argv[5], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (out_fd < 0) {
    std::perror("open");
    return 2;
  }
  auto cfg = flowrun::kube::LoadKubeconfig(argv[1]);
  if (!cfg.ok()) {
    std::cerr << cfg.status() << "\n";
    return 2;
  }
  flowrun::kube::ClientOptions copts;
  copts.request_timeout = std::chrono::milliseconds(std::atoll(argv[8]) * 2);
  auto client = flowrun::kube::NewKubeClient(*cfg, copts);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 2;
  }

  std::atomic<bool> stopping{false};
  flowrun::kube::LeaderElectionConfig lc;
  lc.lease_namespace = argv[2];
  lc.lease_name = argv[3];
  lc.identity = id;
  lc.lease_duration = std::chrono::milliseconds(std::atoll(argv[6]));
  lc.renew_deadline = std::chrono::milliseconds(std::atoll(argv[7]));
  lc.retry_period = std::chrono::milliseconds(std::atoll(argv[8]));
  lc.on_started_leading = [] { Line("LEADER"); };
  lc.on_stopped_leading = [&] {
    if (stopping.load()) return;
    Line("LOST");
    _exit(3);  // stop every write at once: the simplest correct reaction
  };
  auto elector = flowrun::kube::LeaderElector::Create(client->get(), lc);
  if (!elector.ok()) {
    std::cerr << elector.status() << "\n";
    return 2;
  }
  Line("STARTED");
  (*elector)->Start();

  std::atomic<bool> done{false};
  std::thread claimer([&] {
    while (!done.load()) {
      if ((*elector)->IsLeader()) Line("CLAIM");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  int sig = 0;
  sigwait(&sigs, &sig);
  stopping = true;
  done = true;
  claimer.join();
  (*elector)->Stop();  // releases the lease
  Line("RELEASED");
  elector->reset();
  client->reset();
  close(out_fd);
  return 0;
}
