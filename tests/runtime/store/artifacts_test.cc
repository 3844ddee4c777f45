// Artifacts: versioned per name, binary safe, listed and loaded by version.
#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreArtifacts : public StoreTest {};

TEST_F(StoreArtifacts, ArtifactsAreVersionedAndBinarySafe) {
  auto store = Store();
  Begin(*store, "run-art", 1);
  std::string binary;
  for (int rep = 0; rep < 4; ++rep)
    for (int c = 0; c < 256; ++c) binary.push_back(static_cast<char>(c));
  binary += std::string("\0\0tail\0", 7);
  ASSERT_EQ(binary.size(), 1031u);

  EXPECT_EQ(Must(store->SaveArtifact("report", "text/markdown", "# v1", std::nullopt)), 1);
  EXPECT_EQ(Must(store->SaveArtifact("report", "text/markdown", "# v2", CheckpointKey{"write", 2})), 2);
  EXPECT_EQ(Must(store->SaveArtifact("blob", "application/octet-stream", binary, std::nullopt)), 1);
  EXPECT_EQ(Must(store->SaveArtifact("report", "text/markdown", "# v3", std::nullopt)), 3);
  EXPECT_EQ(Must(store->SaveArtifact("empty", "text/plain", "", std::nullopt)), 1);

  auto admin = Admin();
  Artifact latest = Must(admin->LoadArtifact("run-art", "report", 0));
  EXPECT_EQ(latest.info.version, 3);
  EXPECT_EQ(latest.data, "# v3");
  Artifact v2 = Must(admin->LoadArtifact("run-art", "report", 2));
  EXPECT_EQ(v2.info.version, 2);
  EXPECT_EQ(v2.data, "# v2");
  EXPECT_EQ(v2.info.checkpoint, "write#2");
  EXPECT_EQ(v2.info.content_type, "text/markdown");
  EXPECT_EQ(v2.info.size_bytes, 4);
  EXPECT_EQ(Must(admin->LoadArtifact("run-art", "report", 1)).data, "# v1");
  EXPECT_EQ(Must(admin->LoadArtifact("run-art", "report", 1)).info.checkpoint, "");

  Artifact blob = Must(admin->LoadArtifact("run-art", "blob", 0));
  EXPECT_EQ(blob.data.size(), binary.size());
  EXPECT_TRUE(blob.data == binary) << "binary artifact changed in the round trip";
  EXPECT_EQ(blob.info.size_bytes, static_cast<int64_t>(binary.size()));
  EXPECT_EQ(blob.info.sha256,
            Query("SELECT encode(sha256(data), 'hex') FROM flowrun.artifacts WHERE name = 'blob'")[0][0]
                .as<std::string>());
  EXPECT_EQ(Count("SELECT length(data) FROM flowrun.artifacts WHERE name = 'blob'"), 1031);
  EXPECT_EQ(Must(admin->LoadArtifact("run-art", "empty", 0)).data, "");

  auto missing = admin->LoadArtifact("run-art", "report", 4);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(admin->LoadArtifact("run-art", "nope", 0).status().code(), StatusCode::kNotFound);

  auto list = Must(admin->ListArtifacts("run-art"));
  std::vector<std::pair<std::string, int>> got;
  for (const auto& a : list) got.emplace_back(a.name, a.version);
  std::vector<std::pair<std::string, int>> want = {
      {"blob", 1}, {"empty", 1}, {"report", 1}, {"report", 2}, {"report", 3}};
  EXPECT_EQ(got, want);
  for (const auto& a : list) EXPECT_EQ(a.sha256.size(), 64u) << a.name;

  // Versions continue across executions.
  auto next = Store();
  Begin(*next, "run-art", 2);
  EXPECT_EQ(Must(next->SaveArtifact("report", "text/markdown", "# v4", std::nullopt)), 4);
}

}  // namespace
}  // namespace flowrun::store_test
