// Tables the way kubectl prints them: upper-case headers, columns padded to
// their widest cell (UTF-8 aware), three spaces between, no trailing spaces.
// A column marked `wide` shows only with `-o wide`.
#pragma once

#include <string>
#include <vector>

namespace flowrun::plugin {

struct Column {
  std::string header;
  bool wide = false;  // only in -o wide
};

class Table {
 public:
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  // A row with one cell per column (missing cells are empty, extra ones dropped).
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  // The rendered table ending in '\n'; "" when it has no rows and
  // `headers_when_empty` is false.
  std::string Render(bool wide, bool headers_when_empty = false) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Display width of UTF-8 text: code points (no East Asian width tables).
size_t DisplayWidth(const std::string& s);

}  // namespace flowrun::plugin
