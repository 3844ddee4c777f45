// A minimal HTTP/1.0 client for the tests' and benchmarks' own servers on
// 127.0.0.1 (the controller's health and metrics endpoints): one connection
// per request, read until the server closes it, 5 s receive timeout so a
// server that never answers cannot hang a test. Thread-safe (no state).
#pragma once

#include <string>

namespace flowrun::testing {

// GET `path` from 127.0.0.1:port; the whole response ("" when nothing answered).
std::string HttpGet(int port, const std::string& path);
// The status code of GET `path` (0: no answer).
int HttpGetStatus(int port, const std::string& path);
// The body of GET `path` ("" on failure).
std::string HttpGetBody(int port, const std::string& path);

}  // namespace flowrun::testing
