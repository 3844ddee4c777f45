// main() for tests linking flowrun_kube_test_support: registers the
// environment that stops the shared cluster at the end of the run. A test
// that defines its own main() does not pull this file in (static library).
#include <csignal>

#include <gtest/gtest.h>

#include "kube/kube_cluster.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new flowrun::testing::KubeClusterEnvironment);
  return RUN_ALL_TESTS();
}
