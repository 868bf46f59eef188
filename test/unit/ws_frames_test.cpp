// WebSocket frames as a sans-I/O unit (RFC 6455 §5), case by case.
#include <mesa/transport/detail/ws_frames.hpp>

#include <doctest/doctest.h>

#include "../support/ws_wire.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using mesa::transport::detail::frame_error;
using mesa::transport::detail::frame_event;
using mesa::transport::detail::frame_reader;
namespace op = mesa::transport::detail::ws_opcode;

namespace {

using mesa_test::wire::client_frame;

std::string text(std::string const& p) { return client_frame(0x81, p); }

struct outcome {
    std::vector<std::pair<frame_event, std::string>> events;
    frame_error error;
};

/// Feeds `bytes` to a reader in pieces of `piece` bytes (0: at once).
outcome read(std::string bytes, std::size_t max = 1024, std::size_t piece = 0, frame_reader* keep = nullptr) {
    frame_reader local{max};
    frame_reader& r = keep ? *keep : local;
    outcome out;
    std::size_t const step = piece ? piece : (bytes.empty() ? 1 : bytes.size());
    for (std::size_t at = 0; at < bytes.size() && !out.error; at += step) {
        std::size_t const n = std::min(step, bytes.size() - at);
        out.error = r.feed(&bytes[at], n, [&](frame_event e, std::string_view p) { out.events.emplace_back(e, p); });
    }
    return out;
}

}  // namespace

TEST_CASE("frames: a masked text frame is unmasked and reported whole, in one read or byte by byte") {
    for (std::size_t piece : {0, 1, 3}) {
        INFO("piece " << piece);
        auto out = read(text("Hello") + text("{\"op\":0}"), 1024, piece);
        CHECK_FALSE(out.error);
        REQUIRE(out.events.size() == 2);
        CHECK(out.events[0] == std::pair{frame_event::text, std::string("Hello")});
        CHECK(out.events[1] == std::pair{frame_event::text, std::string("{\"op\":0}")});
    }
}

TEST_CASE("frames: 16- and 64-bit lengths") {
    std::string const mid(300, 'm'), big(70000, 'b');
    auto out = read(text(mid) + client_frame(0x82, big), 100000, 4096);
    CHECK_FALSE(out.error);
    REQUIRE(out.events.size() == 2);
    CHECK(out.events[0].second == mid);
    CHECK(out.events[1] == std::pair{frame_event::binary, big});
}

TEST_CASE("frames: fragmentation, with control frames in between") {
    std::string const bytes = client_frame(0x01, "Hel") + client_frame(0x89, "ping!") + client_frame(0x00, "lo ") +
                              client_frame(0x8A, "") + client_frame(0x80, "world");
    for (std::size_t piece : {0, 1, 7}) {
        auto out = read(bytes, 1024, piece);
        CHECK_FALSE(out.error);
        REQUIRE(out.events.size() == 3);
        CHECK(out.events[0] == std::pair{frame_event::ping, std::string("ping!")});
        CHECK(out.events[1] == std::pair{frame_event::pong, std::string()});
        CHECK(out.events[2] == std::pair{frame_event::text, std::string("Hello world")});
    }
}

TEST_CASE("frames: a message split in UTF-8 sequences across fragments is valid") {
    std::string const e_acute = "\xc3\xa9";
    auto out = read(client_frame(0x01, "caf\xc3") + client_frame(0x80, "\xa9"));
    CHECK_FALSE(out.error);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].second == "caf" + e_acute);
}

TEST_CASE("frames: every length and split unmasks and validates like the byte-by-byte rule") {
    // Unmasking and the ASCII skip work a word at a time: lengths around the
    // word size, at every offset of the mask, with a non-ASCII byte anywhere.
    for (std::size_t length = 0; length <= 40; ++length) {
        for (std::size_t special = 0; special <= length; ++special) {
            std::string payload;
            for (std::size_t i = 0; i < length; ++i) payload += char('a' + (i * 7) % 26);
            std::string valid = payload, invalid = payload;
            if (special < length) {
                valid.replace(special, 1, "\xc3\xa9");
                invalid[special] = '\xff';
            }
            std::size_t const split = length / 3;
            for (std::size_t piece : {0, 1, 5, 9}) {
                INFO("length " << length << " special " << special << " piece " << piece);
                auto out = read(text(valid), 1024, piece);
                CHECK_FALSE(out.error);
                REQUIRE(out.events.size() == 1);
                CHECK(out.events[0].second == valid);
                out = read(client_frame(0x01, valid.substr(0, split)) + client_frame(0x80, valid.substr(split)), 1024,
                           piece);
                REQUIRE(out.events.size() == 1);
                CHECK(out.events[0].second == valid);
                if (special < length) CHECK(read(text(invalid), 1024, piece).error.code == 1007);
            }
        }
    }
    // A fragment ending inside a character, then ASCII words: still invalid.
    CHECK(read(client_frame(0x01, "caf\xc3") + client_frame(0x80, std::string(24, 'x'))).error.code == 1007);
}

TEST_CASE("frames: protocol errors close with 1002") {
    struct input {
        char const* name;
        std::string bytes;
    };
    std::string const long_ping(126, 'p');
    input const cases[] = {
        {"unmasked frame", client_frame(0x81, "hi", false)},
        {"RSV1 set", client_frame(0xC1, "hi")},
        {"RSV2 set", client_frame(0xA1, "hi")},
        {"RSV3 set", client_frame(0x91, "hi")},
        {"reserved data opcode 3", client_frame(0x83, "hi")},
        {"reserved control opcode 0xB", client_frame(0x8B, "")},
        {"control frame of 126 bytes", client_frame(0x89, long_ping)},
        {"fragmented ping", client_frame(0x09, "p")},
        {"continuation without a message", client_frame(0x80, "x")},
        {"new message inside a fragmented one", client_frame(0x01, "a") + client_frame(0x81, "b")},
        {"close with a 1-byte payload", client_frame(0x88, "\x03")},
        {"close code 1005", client_frame(0x88, std::string("\x03\xed", 2))},
        {"close code 999", client_frame(0x88, std::string("\x03\xe7", 2))},
        {"close code 1004", client_frame(0x88, std::string("\x03\xec", 2))},
        {"close code 2000", client_frame(0x88, std::string("\x07\xd0", 2))},
        {"close code 5000", client_frame(0x88, std::string("\x13\x88", 2))},
        {"length with the top bit set", std::string("\x81\xff\x80\x00\x00\x00\x00\x00\x00\x01"
                                                    "abcd",
                                                    14)},
    };
    for (auto const& c : cases) {
        INFO(c.name);
        auto out = read(c.bytes);
        CHECK(out.error.code == 1002);
        CHECK(out.events.empty());
    }
}

TEST_CASE("frames: a 125-byte ping is fine") {
    auto out = read(client_frame(0x89, std::string(125, 'p')));
    CHECK_FALSE(out.error);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].second.size() == 125);
}

TEST_CASE("frames: invalid UTF-8 in a text message or a close reason closes with 1007") {
    struct input {
        char const* name;
        std::string bytes;
    };
    input const cases[] = {
        {"invalid byte", text("ab\xff")},
        {"overlong encoding", text("\xc0\xaf")},
        {"surrogate", text("\xed\xa0\x80")},
        {"truncated sequence at the end", text("caf\xc3")},
        {"truncated over fragments", client_frame(0x01, "caf\xc3") + client_frame(0x80, "x")},
        {"close reason", client_frame(0x88, std::string("\x03\xe8\xff", 3))},
    };
    for (auto const& c : cases) {
        INFO(c.name);
        for (std::size_t piece : {0, 1}) {
            auto out = read(c.bytes, 1024, piece);
            CHECK(out.error.code == 1007);
            CHECK(out.events.empty());
        }
    }
    // Binary messages are not text: any bytes.
    auto out = read(client_frame(0x82, "\xff\xfe"));
    CHECK_FALSE(out.error);
}

TEST_CASE("frames: a message over the limit closes with 1009 before its payload is read") {
    SUBCASE("one frame announcing more than the limit") {
        // Only the header arrives: the refusal does not wait for (or reserve) the payload.
        std::string header = client_frame(0x81, std::string(2000, 'x')).substr(0, 8);
        auto out = read(header, 1024);
        CHECK(out.error.code == 1009);
    }
    SUBCASE("a 2^62-byte announcement") {
        auto out = read(std::string("\x81\xff\x40\x00\x00\x00\x00\x00\x00\x00"
                                    "abcd",
                                    14),
                        1024);
        CHECK(out.error.code == 1009);
    }
    SUBCASE("fragments adding up to more than the limit") {
        auto out = read(client_frame(0x01, std::string(600, 'a')) + client_frame(0x80, std::string(600, 'b')), 1024);
        CHECK(out.error.code == 1009);
        CHECK(out.events.empty());
    }
    SUBCASE("exactly the limit passes") {
        auto out = read(text(std::string(1024, 'a')), 1024);
        CHECK_FALSE(out.error);
        CHECK(out.events.size() == 1);
    }
}

TEST_CASE("frames: a close frame ends reading; its code and reason are reported") {
    frame_reader r{1024};
    auto out = read(client_frame(0x88, std::string("\x0f\xa0") + "bye") + text("after"), 1024, 0, &r);
    CHECK_FALSE(out.error);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].first == frame_event::close);
    CHECK(r.close_code() == 4000);
    CHECK(r.close_reason() == "bye");

    frame_reader empty{1024};
    auto none = read(client_frame(0x88, ""), 1024, 0, &empty);
    REQUIRE(none.events.size() == 1);
    CHECK(empty.close_code() == 1005);
}

TEST_CASE("frames: only the bytes of an unfinished frame are held, nothing between messages") {
    frame_reader r{1 << 20};
    std::string const whole = text(std::string(5000, 'a'));
    outcome out = read(whole.substr(0, 3000), 1 << 20, 0, &r);
    // What arrived of it, not the 5000 bytes it announced.
    CHECK(r.held_bytes() > 0);
    CHECK(r.held_bytes() <= 3000);
    out = read(whole.substr(3000), 1 << 20, 0, &r);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].second == std::string(5000, 'a'));
    CHECK(r.held_bytes() == 0);
}

TEST_CASE("frames: server frames") {
    using mesa::transport::detail::close_frame;
    using mesa::transport::detail::frame_header;
    char h[10];
    CHECK(frame_header(op::text, 5, h) == 2);
    CHECK(std::string(h, 2) == "\x81\x05");
    CHECK(frame_header(op::text, 300, h) == 4);
    CHECK(std::string(h, 4) == std::string("\x81\x7e\x01\x2c", 4));
    CHECK(frame_header(op::binary, 70000, h) == 10);
    CHECK(std::string(h, 10) == std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10));
    CHECK(close_frame(4000, "bye") == std::string("\x88\x05\x0f\xa0"
                                                  "bye",
                                                  7));
    // A long reason is cut to fit 125 bytes, not inside a UTF-8 sequence.
    std::string reason(122, 'r');
    reason += "\xc3\xa9\xc3\xa9";
    auto f = close_frame(1000, reason);
    CHECK(f.size() == 2 + 2 + 122);
}
