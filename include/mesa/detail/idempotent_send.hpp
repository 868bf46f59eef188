#pragma once
// The steps of an idempotent send (mesa/idempotency.hpp) shared by the server
// and the dispatcher: the claim of one attempt, and what ends it once the
// broker answered the claim (record the result, or free the key).
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <mesa/broker/completion.hpp>
#include <mesa/detail/uuid.hpp>
#include <mesa/idempotency.hpp>
#include <mesa/keys.hpp>

namespace mesa::detail {

/// A claim of `once.key` for one attempt (a token of its own). Throws
/// std::invalid_argument for a key is_idempotency_key refuses.
inline broker::idempotency_claim idempotency_claim_for(mesa::keys const& k, idempotency const& once) {
    if (!is_idempotency_key(once.key))
        throw std::invalid_argument("idempotency key must be 1 to " + std::to_string(max_idempotency_key_bytes) +
                                    " bytes of visible ASCII (0x21-0x7E) other than quotes and backslashes");
    return {k.idempotency(once.key), uuid_v4(), once.in_flight_ttl};
}

/// Ends the attempt of `claim` once the broker answered it with `ec`, `c`,
/// and tells `done`. Taken (unconfirmed included: it went out, a retry must
/// not repeat it), the result is recorded before `done` runs, so a repeat
/// that follows the answer finds it; refused, the key is freed. When the
/// record itself fails (the broker went away), the key stays in flight until
/// claim.in_flight_ttl passes. `done` may be empty.
template <class Broker>
void finish_idempotent(Broker& b, broker::idempotency_claim const& claim, idempotency const& once, std::error_code ec,
                       broker::claim_result c, send_handler done) {
    auto tell = [&done](std::error_code code, send_result r) {
        if (done) done(code, std::move(r));
    };
    using state = broker::claim_result::state;
    if (!ec && c.status == state::in_flight) return tell({}, {send_outcome::in_flight, {}});
    if (!ec && c.status == state::done) return tell({}, {send_outcome::replayed, std::move(c.result)});
    if (ec && ec != broker::condition::taken_unconfirmed) {
        b.idempotency_release(claim);
        return tell(ec, {});
    }
    b.idempotency_settle(claim, once.result, once.ttl,
                         [ec, result = once.result, done = std::move(done)](std::error_code) {
                             if (done) done(ec, {send_outcome::sent, result});
                         });
}

}  // namespace mesa::detail
