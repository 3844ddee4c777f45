// Substring expectations for gtest (no gmock in this project): the one
// definition the test files share.
#pragma once

#include <string>

#include <gtest/gtest.h>

#define EXPECT_CONTAINS(haystack, needle)                           \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "expected to find \"" << (needle) << "\" in: " << (haystack)
#define EXPECT_NOT_CONTAINS(haystack, needle)                       \
  EXPECT_EQ(std::string(haystack).find(needle), std::string::npos) \
      << "did not expect \"" << (needle) << "\" in: " << (haystack)
