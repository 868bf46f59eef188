#pragma once
// What idempotent sends (server::send, dispatcher::dispatch with a
// mesa::idempotency) answered, in the order they did.
#include <mesa/idempotency.hpp>

#include <system_error>
#include <utility>
#include <vector>

namespace mesa::test {

struct send_answers {
    std::vector<std::error_code> errors;
    std::vector<mesa::send_result> results;
    mesa::send_handler handler() {
        return [this](std::error_code ec, mesa::send_result r) {
            errors.push_back(ec);
            results.push_back(std::move(r));
        };
    }
    std::vector<mesa::send_outcome> outcomes() const {
        std::vector<mesa::send_outcome> out;
        for (auto const& r : results) out.push_back(r.outcome);
        return out;
    }
};

}  // namespace mesa::test
