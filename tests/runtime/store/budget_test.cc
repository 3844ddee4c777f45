// Budget and LLM spend: budgets set before and during a run, spend and
// usage by model, and small amounts stored exactly.
#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreBudget : public StoreTest {};

TEST_F(StoreBudget, BudgetSpendAndUsageByModel) {
  auto admin = Admin();
  // A budget set before the first attempt creates the run and wins over the
  // environment's initial budget.
  MustOk(admin->SetBudget("run-$", 1.0));
  EXPECT_EQ(Must(admin->GetRun("run-$")).status, RunStatus::kPending);
  auto store = Store();
  ExecutionStart start = Begin(*store, "run-$", 1, 5.0);
  ASSERT_TRUE(start.budget_usd.has_value());
  EXPECT_DOUBLE_EQ(*start.budget_usd, 1.0);

  auto b0 = Must(store->ReadBudget());
  ASSERT_TRUE(b0.first.has_value());
  EXPECT_DOUBLE_EQ(*b0.first, 1.0);
  EXPECT_EQ(b0.second, 0);

  CheckpointKey k{"research", 1};
  MustOk(store->RecordLlmCall(k, Priced("gpt-4o-mini", 1000, 200, 0.25, "reported")));
  MustOk(store->RecordLlmCall(std::nullopt, Priced("gpt-4o-mini", 3000, 400, 0.5, "price-table:gpt-4o-mini")));
  MustOk(store->RecordLlmCall(k, Priced("mystery", 700, 70, std::nullopt, "unknown")));
  MustOk(store->RecordLlmCall(k, Priced("mystery", 300, 30, std::nullopt, "unknown")));

  auto b1 = Must(store->ReadBudget());
  EXPECT_NEAR(b1.second, 0.75, 1e-9);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE cost_usd IS NULL AND price_source = 'unknown'"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE checkpoint_name IS NULL"), 1);

  // A person raises the budget: the store re-reads it.
  MustOk(admin->SetBudget("run-$", 10.0));
  auto b2 = Must(store->ReadBudget());
  ASSERT_TRUE(b2.first.has_value());
  EXPECT_DOUBLE_EQ(*b2.first, 10.0);
  MustOk(admin->SetBudget("run-$", std::nullopt));
  EXPECT_FALSE(Must(store->ReadBudget()).first.has_value());
  EXPECT_EQ(admin->SetBudget("run-$", -1.0).code(), StatusCode::kInvalidArgument);

  RunState run = Must(admin->GetRun("run-$"));
  EXPECT_EQ(run.spent.llm_calls, 4);
  EXPECT_EQ(run.spent.input_tokens, 5000);
  EXPECT_EQ(run.spent.output_tokens, 700);
  EXPECT_NEAR(run.spent.cost_usd, 0.75, 1e-9);
  EXPECT_EQ(run.spent.unknown_cost_calls, 2);

  auto by_model = Must(admin->UsageByModel("run-$"));
  ASSERT_EQ(by_model.size(), 2u);
  EXPECT_EQ(by_model[0].model, "gpt-4o-mini");
  EXPECT_EQ(by_model[0].usage.llm_calls, 2);
  EXPECT_EQ(by_model[0].usage.input_tokens, 4000);
  EXPECT_EQ(by_model[0].usage.output_tokens, 600);
  EXPECT_NEAR(by_model[0].usage.cost_usd, 0.75, 1e-9);
  EXPECT_EQ(by_model[0].usage.unknown_cost_calls, 0);
  EXPECT_EQ(by_model[1].model, "mystery");
  EXPECT_EQ(by_model[1].usage.llm_calls, 2);
  EXPECT_EQ(by_model[1].usage.cost_usd, 0);
  EXPECT_EQ(by_model[1].usage.unknown_cost_calls, 2);

  // The next execution starts from the run's spend so far.
  auto next = Store();
  EXPECT_NEAR(Begin(*next, "run-$", 2).spent_usd, 0.75, 1e-9);
}

// A cheap call (10 input tokens of gpt-4o-mini cost $0.0000015) must be
// stored with its cost, not rounded to micro-dollars or to zero: lib costs
// are "never a silent zero" (llm_usage.h).
TEST_F(StoreBudget, SmallCallCostsAreStoredExactly) {
  auto store = Store();
  Begin(*store, "run-tiny", 1);
  for (int i = 0; i < 4; ++i)
    MustOk(store->RecordLlmCall(std::nullopt, Priced("gpt-4o-mini", 1, 0, 1.5e-7, "price-table:gpt-4o-mini")));
  MustOk(store->RecordLlmCall(std::nullopt, Priced("gpt-4o-mini", 10, 0, 1.5e-6, "price-table:gpt-4o-mini")));
  auto budget = Must(store->ReadBudget());
  EXPECT_NEAR(budget.second, 4 * 1.5e-7 + 1.5e-6, 1e-12);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE cost_usd = 0"), 0);
}

TEST_F(StoreBudget, SmallBudgetsAreStoredExactly) {
  auto admin = Admin();
  MustOk(admin->SetBudget("run-sb", 2.5e-7));
  auto run = Must(admin->GetRun("run-sb"));
  ASSERT_TRUE(run.budget_usd.has_value());
  EXPECT_NEAR(*run.budget_usd, 2.5e-7, 1e-12);
  auto store = Store();
  ExecutionStart start = Begin(*store, "run-sb2", 1, 1.234567891);
  ASSERT_TRUE(start.budget_usd.has_value());
  EXPECT_NEAR(*start.budget_usd, 1.234567891, 1e-12);
}

}  // namespace
}  // namespace flowrun::store_test
