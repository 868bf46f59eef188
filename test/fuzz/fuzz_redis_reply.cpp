// libFuzzer target: the Redis reply handling of mesa::broker::redis on
// arbitrary bytes.
//
// - redis_reader (redis_resp.hpp), the RESP reader each Redis connection feeds
//   its socket reads to: the bytes, fed whole and fed in chunks of a size
//   chosen by the input, must give the same replies (or the same protocol
//   error); every reply is walked as the broker reads it (redis_text on every
//   node, pub/sub pushes' three elements).
// - split_backlog (redis_backlog.hpp) on every string reply and on the raw
//   input: when it accepts, it returns exactly one text per array element and
//   each text is the JSON of that element.
// - parse_redis_uri (redis_uri.hpp) on the raw input: it either returns a
//   usable endpoint or throws std::invalid_argument, nothing else.
//
// Build and run: .ci/fuzz.
#include <mesa/broker/detail/redis_backlog.hpp>
#include <mesa/broker/detail/redis_resp.hpp>
#include <mesa/broker/detail/redis_uri.hpp>

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace detail = mesa::broker::detail;

[[noreturn]] void fail(char const* what, std::string_view detail_text = {}) {
    std::fprintf(stderr, "fuzz_redis_reply: %s\n  detail: %.*s\n", what, static_cast<int>(detail_text.size()),
                 detail_text.data());
    std::abort();
}

void check_backlog(std::string_view stored) {
    std::vector<std::string> texts;
    auto const ec = detail::split_backlog(stored, texts);
    if (ec) {
        if (ec != mesa::broker::redis_errc::bad_backlog) fail("split_backlog: unexpected error code", stored);
        return;
    }
    boost::system::error_code jec;
    auto const value = boost::json::parse(stored, jec);
    if (jec) fail("split_backlog accepted text that is not JSON", stored);
    if (value.is_object()) {
        if (!texts.empty()) fail("split_backlog: {} gave elements", stored);
        return;
    }
    auto const& array = value.as_array();
    if (texts.size() != array.size()) fail("split_backlog: element count differs from the array's", stored);
    for (std::size_t i = 0; i < texts.size(); ++i) {
        auto const element = boost::json::parse(texts[i], jec);
        if (jec) fail("split_backlog: an element text is not JSON", texts[i]);
        // Not compared with array[i]: Boost.JSON 1.81 reads long mantissas and
        // huge exponents slightly differently in and out of an array (exact
        // parsing came in 1.83). The byte-exact split is tested in redis_tests.
    }
}

// The reply as text, to compare two readings; also reads every node the way
// the broker does (redis_text on anything).
void describe(redisReply const& r, std::string& out, int depth) {
    if (depth > 64) fail("reply nested deeper than hiredis allows");
    auto const text = detail::redis_text(r);
    out += std::to_string(r.type);
    out += ':';
    out += std::to_string(r.integer);
    out += ':';
    out.append(text.data(), text.size());
    switch (r.type) {
        case REDIS_REPLY_STRING:
            check_backlog(text);  // what backlog_take does with a string reply
            break;
        case REDIS_REPLY_ARRAY:
            out += '[';
            for (std::size_t i = 0; i < r.elements; ++i) {
                if (!r.element || !r.element[i]) fail("array reply with a null element");
                describe(*r.element[i], out, depth + 1);
                out += ',';
            }
            out += ']';
            // A pub/sub push as state::pushed reads it.
            if (r.elements >= 3) {
                auto const kind = detail::redis_text(*r.element[0]);
                auto const payload = detail::redis_text(*r.element[2]);
                if (kind == "message") out.append(payload.data(), payload.size());
            }
            break;
        default:
            break;
    }
}

/// Feeds `bytes` in chunks of `chunk` (0: whole); the replies as text, and
/// whether it ended with a protocol error.
std::vector<std::string> read_all(std::string_view bytes, std::size_t chunk, bool& error) {
    detail::redis_reader reader;
    std::vector<std::string> replies;
    error = false;
    std::size_t pos = 0;
    do {
        std::size_t const n = chunk == 0 ? bytes.size() : std::min(chunk, bytes.size() - pos);
        if (!reader.feed(bytes.data() + pos, n)) {
            error = true;
            return replies;
        }
        pos += n;
        // Exactly the connection's loop: take replies until none or an error.
        for (;;) {
            detail::redis_reply_ptr reply;
            auto const got = reader.next(reply);
            if (got == detail::redis_reader::result::none) break;
            if (got == detail::redis_reader::result::error) {
                if (reader.error().empty()) fail("protocol error without a message");
                error = true;
                return replies;
            }
            if (!reply) fail("reader gave a null reply");
            std::string text;
            describe(*reply, text, 0);
            replies.push_back(std::move(text));
        }
    } while (pos < bytes.size());
    return replies;
}

void check_uri(std::string_view text) {
    try {
        auto const e = detail::parse_redis_uri(text);
        if (e.is_unix()) {
            if (e.unix_path.front() != '/') fail("unix socket path is not absolute", text);
        } else {
            if (e.host.empty()) fail("uri without a host accepted", text);
            if (e.port == 0) fail("port 0 accepted", text);
        }
        if (e.db < 0 || e.db > (1 << 20)) fail("db out of range accepted", text);
        if (!e.user.empty() && e.password.empty()) fail("user without a password accepted", text);
        (void)e.describe();
    } catch (std::invalid_argument const& ex) {
        if (std::string_view(ex.what()).find("invalid redis uri") == std::string_view::npos)
            fail("invalid_argument without the documented message", ex.what());
    }
    // Anything else escapes, and libFuzzer reports it as a crash.
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view const all(reinterpret_cast<char const*>(data), size);
    check_uri(all);
    check_backlog(all);
    if (size == 0) return 0;
    // First byte: the read size the socket delivers (1..256); the rest: the stream.
    std::size_t const chunk = static_cast<std::size_t>(data[0]) + 1;
    std::string_view const stream = all.substr(1);
    bool whole_error = false, chunked_error = false;
    auto const whole = read_all(stream, 0, whole_error);
    auto const chunked = read_all(stream, chunk, chunked_error);
    // A protocol error can be noticed at a different reply only if the
    // replies before it agree.
    if (!whole_error && !chunked_error && whole != chunked) fail("chunked reading gives other replies", stream);
    if (whole_error != chunked_error) fail("chunked reading changes whether the stream is valid", stream);
    auto const common = std::min(whole.size(), chunked.size());
    for (std::size_t i = 0; i < common; ++i)
        if (whole[i] != chunked[i]) fail("chunked reading gives another reply", whole[i]);
    return 0;
}
