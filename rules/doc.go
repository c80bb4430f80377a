// Package rules is the pure heart of edgehook: rule definitions, MQTT topic
// filters, payload value extraction and the evaluator that turns readings into
// decisions. It does no I/O and reads no clock: time arrives in each Reading
// and in Tick's now argument, so every behaviour can be replayed exactly.
//
// # Model
//
// A Rule is one validated [[rule]] table (see Compile). Each concrete MQTT topic
// that matches the rule's filter is its own series, with its own State. The
// caller (the bridge) owns the States, persists them, and calls:
//
//   - Eval for each valid Reading of a series;
//   - Tick when Deadline says a timer (a pending `for`) is due, even without a reading.
//
// Both mutate the State in place and return an Outcome: Fired, Resolved or
// None, plus a Why code that says what was decided and why (used by
// `edgehook test-rule` and debug logs).
//
// # Threshold semantics (below / above)
//
// Breach is value < threshold (below) or value > threshold (above). Clearing needs
// value >= threshold + hysteresis (below) or value <= threshold - hysteresis (above);
// a value between the two is in the hysteresis band and changes nothing.
//
//   - Edge-triggered (default, like Home Assistant's numeric_state): the series
//     fires when it goes from clear to active and never again while active.
//   - The first reading ever seen for a series sets its state without firing,
//     unless fire_on_first is set.
//   - `for`: the breach must hold without interruption for that long; any
//     non-breaching reading (even one in the band) restarts the wait. When the wait
//     ends the rule fires on a timer (Tick), with no further reading needed.
//   - `cooldown`: at most one firing per series per cooldown. A crossing inside the
//     cooldown is consumed without firing (the series becomes active, so it does not
//     fire later either), like Node-RED's "drop intermediate" rate limit.
//   - `level`: every breaching reading fires (after `for` has held), still limited
//     by cooldown. The first reading is not special in level mode.
//   - `resolve`: when an active series clears, emit Resolved, but only if this
//     active period produced a Fired (a resolve never arrives without its fire).
//
// forward = true turns every valid message into a Fired outcome (cooldown, if
// set, limits it per series); it keeps no other state.
//
// Invalid readings (see Extract) never reach Eval, so they never change state
// and never count as a crossing.
package rules
