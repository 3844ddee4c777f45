// The store tests' main: one private PostgreSQL server for the whole binary
// (every test still gets a database of its own, store_fixture.h).
#include <gtest/gtest.h>

#include "support/postgres_server.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new flowrun::testing::PostgresEnvironment());
  return RUN_ALL_TESTS();
}
