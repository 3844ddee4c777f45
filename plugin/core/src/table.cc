#include "flowrun/plugin/table.h"

#include <algorithm>

namespace flowrun::plugin {

size_t DisplayWidth(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render(bool wide, bool headers_when_empty) const {
  if (rows_.empty() && !headers_when_empty) return "";
  std::vector<size_t> shown;
  for (size_t i = 0; i < columns_.size(); ++i)
    if (wide || !columns_[i].wide) shown.push_back(i);
  std::vector<size_t> width(columns_.size(), 0);
  for (size_t i : shown) {
    width[i] = DisplayWidth(columns_[i].header);
    for (const auto& r : rows_) width[i] = std::max(width[i], DisplayWidth(r[i]));
  }
  std::string out;
  auto line = [&](auto cell_of) {
    std::string l;
    for (size_t k = 0; k < shown.size(); ++k) {
      size_t i = shown[k];
      std::string cell = cell_of(i);
      l += cell;
      if (k + 1 < shown.size()) l += std::string(width[i] - DisplayWidth(cell) + 3, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line([&](size_t i) {
    std::string h = columns_[i].header;
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::toupper(c); });
    return h;
  });
  for (const auto& r : rows_) line([&](size_t i) { return r[i]; });
  return out;
}

}  // namespace flowrun::plugin
