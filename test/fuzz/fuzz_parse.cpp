// libFuzzer target: the frame, `ws` publication and `portal` event parsers on
// arbitrary bytes. Whatever parses must serialize and parse back to an equal
// value; what does not parse must say why (and, for frames, with 1007).
//
// Build and run: .ci/fuzz (or see the comment at its top for long runs).
#include <mesa/envelope.hpp>
#include <mesa/message.hpp>
#include <mesa/parse.hpp>
#include <mesa/portal_event.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

// Boost.JSON 1.81 parses numbers that do not fit in 64 bits (and long
// mantissas) to within a few ULP of the nearest double, not always to it
// (precise parsing came in 1.83), so a value written back and read again may
// move by that much. Everything else must come back exactly.
bool same(mesa::json::value const& a, mesa::json::value const& b) {
    if (a.is_double() && b.is_double()) {
        double const x = a.get_double(), y = b.get_double();
        return x == y || std::fabs(x - y) <= 1e-14 * std::max(std::fabs(x), std::fabs(y));
    }
    if (a.kind() != b.kind()) return false;
    if (a.is_object()) {
        auto const& x = a.get_object();
        auto const& y = b.get_object();
        if (x.size() != y.size()) return false;
        for (auto const& [key, value] : x) {
            auto const* other = y.if_contains(key);
            if (!other || !same(value, *other)) return false;
        }
        return true;
    }
    if (a.is_array()) {
        auto const& x = a.get_array();
        auto const& y = b.get_array();
        if (x.size() != y.size()) return false;
        for (std::size_t i = 0; i < x.size(); ++i)
            if (!same(x[i], y[i])) return false;
        return true;
    }
    return a == b;
}

bool same(mesa::message const& a, mesa::message const& b) {
    return a.op == b.op && a.t == b.t && a.s == b.s && a.sync == b.sync &&
           same(mesa::json::value(a.d), mesa::json::value(b.d));
}

[[noreturn]] void fail(char const* what, std::string_view input, std::string const& detail = {}) {
    std::fprintf(stderr, "fuzz_parse: %s\n  input: %.*s\n  detail: %s\n", what, static_cast<int>(input.size()),
                 input.data(), detail.c_str());
    std::abort();
}

void check_frame(std::string_view text) {
    auto parsed = mesa::parse(text);
    if (!parsed) {
        if (parsed.error().close_code != mesa::close_code::invalid_payload)
            fail("refused with a code other than 1007", text);
        if (parsed.error().reason.empty()) fail("refused without a reason", text);
        return;
    }
    mesa::message const& m = parsed.value();
    if (m.op < 0 || m.op > 255) fail("op out of range", text);
    if (m.s && *m.s < 1) fail("s < 1 accepted", text);

    // Services see every field; the round trip must be exact.
    auto const service = mesa::serialize(m, mesa::audience::service);
    auto again = mesa::parse(service);
    if (!again) fail("service serialization does not parse", text, service + " -> " + again.error().reason);
    if (!same(again.value(), m)) fail("service round trip changed the message", text, service);
    // Clients never see `o`; everything else survives.
    auto const client = mesa::serialize(m, mesa::audience::client);
    auto seen = mesa::parse(client);
    if (!seen) fail("client serialization does not parse", text, client);
    mesa::message expected = m;
    expected.sync.reset();
    if (!same(seen.value(), expected)) fail("client round trip changed the message", text, client);
}

void check_envelope(std::string_view text) {
    mesa::envelope e;
    std::string why;
    if (!mesa::parse_envelope(text, e, why)) {
        if (why.empty()) fail("envelope refused without a reason", text);
        return;
    }
    auto const out = mesa::serialize(e);
    mesa::envelope back;
    if (!mesa::parse_envelope(out, back, why)) fail("envelope serialization does not parse", text, out + " -> " + why);
    // An empty `recipients` array is written as is; parsed back it stays empty.
    if (!same(back.msg, e.msg) || back.recipients != e.recipients || back.excluding != e.excluding ||
        back.origin != e.origin)
        fail("envelope round trip changed it", text, out);
    (void)e.to_everyone();
}

void check_portal_event(std::string_view text) {
    mesa::portal_event e;
    std::string why;
    if (!mesa::parse_portal_event(text, e, why)) {
        if (why.empty()) fail("portal event refused without a reason", text);
        return;
    }
    auto const out = mesa::serialize(e);
    mesa::portal_event back;
    if (!mesa::parse_portal_event(out, back, why))
        fail("portal event serialization does not parse", text, out + " -> " + why);
    // Portal events carry the client form of the message (no `o`).
    auto expected = e.msg;
    if (expected) expected->sync.reset();
    if (back.type != e.type || back.client_id != e.client_id || back.portal_id != e.portal_id ||
        back.msg.has_value() != expected.has_value() || (expected && !same(*back.msg, *expected)))
        fail("portal event round trip changed it", text, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view const text(reinterpret_cast<char const*>(data), size);
    check_frame(text);
    check_envelope(text);
    check_portal_event(text);
    return 0;
}
