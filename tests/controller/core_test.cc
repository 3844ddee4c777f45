#include <gtest/gtest.h>
#include "flowrun/controller/reconcile.h"
TEST(Smoke, Builds) { SUCCEED(); }
