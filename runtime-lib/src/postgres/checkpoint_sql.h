// The SQL of a completed checkpoint's row, in parts, so that the one other
// user of it — bench/runtime_bench.cc's "unfenced upsert" diagnostic, which
// measures the same write without the fence — cannot drift from what the run
// store executes. Parameters: $1 run_uid, $2 epoch, $3 name, $4 occurrence,
// $5 kind, $6 fingerprint, $7 output (JSON text), $8 attempt, $9/$10 started/
// finished (epoch seconds), $11 duration_ms, $12..$17 the usage counters.
#pragma once

namespace flowrun::pg::sql {

// INSERT's head: the table and its column list.
inline constexpr const char* kCompletedInsert =
    "INSERT INTO flowrun.checkpoints AS c (run_uid, name, occurrence, kind, fingerprint, status,"
    "  output, attempt, epoch, started_at, finished_at, duration_ms, llm_calls, input_tokens,"
    "  output_tokens, cached_tokens, cost_usd, unknown_cost_calls)";
// The values, in that order (after SELECT or inside VALUES (...)).
inline constexpr const char* kCompletedValues =
    " $1, $3, $4, $5, $6, 'completed', $7::jsonb, $8, $2, to_timestamp($9), to_timestamp($10),"
    "   $11, $12, $13, $14, $15, $16, $17";
// How the completion replaces the running marker (or an earlier execution's row).
inline constexpr const char* kCompletedOnConflict =
    " ON CONFLICT (run_uid, name, occurrence) DO UPDATE SET kind = EXCLUDED.kind,"
    "   fingerprint = EXCLUDED.fingerprint, status = 'completed', output = EXCLUDED.output,"
    "   attempt = EXCLUDED.attempt, epoch = EXCLUDED.epoch, started_at = EXCLUDED.started_at,"
    "   finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms,"
    "   llm_calls = EXCLUDED.llm_calls, input_tokens = EXCLUDED.input_tokens,"
    "   output_tokens = EXCLUDED.output_tokens, cached_tokens = EXCLUDED.cached_tokens,"
    "   cost_usd = EXCLUDED.cost_usd, unknown_cost_calls = EXCLUDED.unknown_cost_calls, error = '',"
    // A live completion replaces a copied row (a replay's rerun): its usage is spent again, not inherited.
    "   copied = false";

}  // namespace flowrun::pg::sql
