#include "termination_signal.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>

namespace flowrun {

namespace {

sigset_t TermSet() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  return s;
}

}  // namespace

TerminationWatcher::TerminationWatcher(std::function<int()> report) : report_(std::move(report)) {
  sigset_t term = TermSet(), old;
  pthread_sigmask(SIG_BLOCK, &term, &old);
  blocked_here_ = !sigismember(&old, SIGTERM);
  signal_fd_ = signalfd(-1, &term, SFD_CLOEXEC);
  if (signal_fd_ < 0 || pipe2(stop_fds_, O_CLOEXEC) != 0) {
    // No watcher (out of file descriptors): SIGTERM's default action again,
    // as without flowrun's handling (exit 143, no message).
    std::cerr << "flowrun: cannot watch for SIGTERM (signalfd/pipe failed): no \"terminated\" outcome\n";
    if (blocked_here_) pthread_sigmask(SIG_UNBLOCK, &term, nullptr);
    blocked_here_ = false;
    return;
  }
  thread_ = std::thread([this] { Watch(); });
}

TerminationWatcher::~TerminationWatcher() {
  if (thread_.joinable()) {
    const char stop = 's';
    while (::write(stop_fds_[1], &stop, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  for (int fd : {signal_fd_, stop_fds_[0], stop_fds_[1]})
    if (fd >= 0) ::close(fd);
  if (blocked_here_) {
    sigset_t term = TermSet();
    pthread_sigmask(SIG_UNBLOCK, &term, nullptr);
  }
}

void TerminationWatcher::ClaimOutcome() {
  if (!claimed_.exchange(true)) return;
  // SIGTERM won: the watcher thread is reporting and will _exit the process.
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

void TerminationWatcher::Watch() {
  for (;;) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {stop_fds_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR
    if (fds[1].revents) return;            // the destructor: the execution ended normally
    if (!(fds[0].revents & POLLIN)) continue;
    signalfd_siginfo info;
    if (::read(signal_fd_, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    if (claimed_.exchange(true)) continue;  // the execution is already ending with its own outcome
    int code = report_();
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    ::_exit(code);
  }
}

}  // namespace flowrun
