#pragma once
// WebSocket frames (RFC 6455 §5) as a sans-I/O unit: a reader that takes
// the bytes a server reads from a client and reports whole messages and
// control frames, and the writers of the frames a server sends.
//
// Ours rather than websocketpp's processor::hybi13: hybi13 reserves a
// frame's announced size before its bytes arrive (a 2^63-byte header costs
// the allocation it announces, up to the message limit), allocates a
// message object per message through a manager, and leaves the close
// handshake to its connection layer. This reader keeps nothing while idle
// but its fixed state; a frame that arrives whole in one read is handed over
// from the read buffer without a copy, and only a message split over reads
// or frames is gathered (never beyond the message limit). websocketpp still
// provides the UTF-8 validator and the close-code classification.
//
// What the reader refuses, with the close code to send (RFC 6455 §5.2, §5.5,
// §7.4.1, §8.1):
//   1002 reserved bits set (no extension is negotiated), a reserved opcode,
//        an unmasked frame (§5.1), a fragmented control frame or one over
//        125 bytes, a continuation without a message or a new message inside
//        one, a payload length with its top bit set, a close frame with a
//        1-byte payload or an invalid close code;
//   1007 a text message or close reason that is not UTF-8;
//   1009 a message (all its fragments) over the limit.
//
// Thread-safety: none; one reader per connection, used by one thread.
#include <websocketpp/close.hpp>
#include <websocketpp/utf8_validator.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace mesa::transport::detail {

/// RFC 6455 §5.2 opcodes.
namespace ws_opcode {
constexpr std::uint8_t continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA;
}

/// What a frame_reader reports.
enum class frame_event {
    text,    // a whole text message (valid UTF-8)
    binary,  // a whole binary message
    ping,    // a ping's payload (answer with a pong carrying it)
    pong,
    close,  // the peer's close frame: close_code, close_reason; nothing after it is read
};

/// A refusal of the reader: the close code to send and why.
struct frame_error {
    std::uint16_t code = 0;  // 0: no error
    char const* reason = "";
    explicit operator bool() const { return code != 0; }
};

/// Reads the frames of one client connection.
///
///   frame_reader r{max_message_bytes};
///   auto error = r.feed(buffer, n, [&](frame_event e, std::string_view payload) { ... });
///   if (error) close with error.code;
class frame_reader {
public:
    explicit frame_reader(std::size_t max_message_bytes) : max_(max_message_bytes) {}

    /// Parses `size` bytes at `data`, unmasking them in place, and calls
    /// `on(frame_event, std::string_view payload)` for each whole message or
    /// control frame; a view is valid only during its call. Stops after a
    /// close frame or an error; returns the error (code 0: none). Once it
    /// returned an error or reported a close, feed it nothing more.
    template <class Handler>
    frame_error feed(char* data, std::size_t size, Handler&& on) {
        while (size > 0 && !closed_) {
            if (!in_payload_) {
                std::size_t const used = take_header(data, size);
                data += used;
                size -= used;
                if (!header_whole()) return {};
                if (auto e = start_frame()) return fail(e);
                // A whole message in this read is handed over from the buffer.
                if (fin() && opcode() != ws_opcode::continuation && !is_control() && size >= remaining_) {
                    std::size_t const n = static_cast<std::size_t>(remaining_);
                    unmask(data, n);
                    if (opcode() == ws_opcode::text && !is_utf8(data, n))
                        return fail({1007, "text message is not UTF-8"});
                    data += n;
                    size -= n;
                    end_frame_header();
                    message_opcode_ = 0;
                    on(opcode() == ws_opcode::text ? frame_event::text : frame_event::binary,
                       std::string_view(data - n, n));
                    continue;
                }
                in_payload_ = true;
            }
            std::size_t const n = remaining_ < size ? static_cast<std::size_t>(remaining_) : size;
            unmask(data, n);
            if (is_control()) {
                control_.append(data, n);
            } else {
                if (message_opcode_ == ws_opcode::text && !continues_utf8(data, n))
                    return fail({1007, "text message is not UTF-8"});
                message_.append(data, n);
            }
            data += n;
            size -= n;
            remaining_ -= n;
            if (remaining_ == 0) {
                if (auto e = end_frame(on)) return fail(e);
            }
        }
        return {};
    }

    /// After frame_event::close: the peer's code (1005 when it sent none) and reason.
    std::uint16_t close_code() const { return close_code_; }
    std::string const& close_reason() const { return control_; }

    /// Bytes held (allocated) for an unfinished frame or message; 0 between messages.
    std::size_t held_bytes() const {
        return header_len_ + (message_.empty() ? 0 : message_.capacity()) + control_.size();
    }

private:
    std::uint8_t opcode() const { return std::uint8_t(header_[0]) & 0x0F; }
    bool fin() const { return (std::uint8_t(header_[0]) & 0x80) != 0; }
    bool is_control() const { return (opcode() & 0x08) != 0; }
    bool masked() const { return (std::uint8_t(header_[1]) & 0x80) != 0; }
    std::uint8_t length7() const { return std::uint8_t(header_[1]) & 0x7F; }

    std::size_t header_size() const {
        if (header_len_ < 2) return 2;
        std::size_t const ext = length7() == 126 ? 2 : length7() == 127 ? 8 : 0;
        return 2 + ext + (masked() ? 4 : 0);
    }
    bool header_whole() const { return header_len_ >= 2 && header_len_ == header_size(); }

    std::size_t take_header(char const* data, std::size_t size) {
        std::size_t used = 0;
        while (used < size && header_len_ < header_size()) header_[header_len_++] = data[used++];
        return used;
    }

    frame_error start_frame() {
        auto const b0 = std::uint8_t(header_[0]);
        if (b0 & 0x70) return {1002, "reserved bits set"};
        std::uint8_t const op = opcode();
        if ((op > ws_opcode::binary && op < ws_opcode::close) || op > ws_opcode::pong) return {1002, "reserved opcode"};
        if (!masked()) return {1002, "client frames must be masked"};
        std::uint64_t length = length7();
        std::size_t at = 2;
        if (length == 126) {
            length = (std::uint64_t(std::uint8_t(header_[2])) << 8) | std::uint8_t(header_[3]);
            at = 4;
        } else if (length == 127) {
            length = 0;
            for (std::size_t i = 2; i < 10; ++i) length = (length << 8) | std::uint8_t(header_[i]);
            if (length >> 63) return {1002, "payload length with its top bit set"};
            at = 10;
        }
        std::memcpy(mask_, header_ + at, 4);
        mask_at_ = 0;
        if (is_control()) {
            if (!fin()) return {1002, "fragmented control frame"};
            if (length > 125) return {1002, "control frame over 125 bytes"};
        } else if (op == ws_opcode::continuation) {
            if (message_opcode_ == 0) return {1002, "continuation frame without a message"};
        } else if (message_opcode_ != 0) {
            return {1002, "new message before the last one ended"};
        }
        if (!is_control() && length > max_ - message_.size()) return {1009, "message too big"};
        remaining_ = length;
        if (!is_control() && op != ws_opcode::continuation) {
            message_opcode_ = op;
            utf8_.reset();
        }
        return {};
    }

    template <class Handler>
    frame_error end_frame(Handler& on) {
        end_frame_header();
        if (is_control()) {
            std::uint8_t const op = opcode();
            if (op == ws_opcode::close) return end_close(on);
            on(op == ws_opcode::ping ? frame_event::ping : frame_event::pong, std::string_view(control_));
            control_ = std::string();  // nothing is kept between frames
            return {};
        }
        if (!fin()) return {};
        if (message_opcode_ == ws_opcode::text && !utf8_.complete()) return {1007, "text message is not UTF-8"};
        frame_event const e = message_opcode_ == ws_opcode::text ? frame_event::text : frame_event::binary;
        message_opcode_ = 0;
        std::string whole;
        whole.swap(message_);  // nothing is kept between messages
        on(e, std::string_view(whole));
        return {};
    }

    template <class Handler>
    frame_error end_close(Handler& on) {
        if (control_.size() == 1) return {1002, "close frame with a 1-byte payload"};
        close_code_ = 1005;
        if (control_.size() >= 2) {
            close_code_ = std::uint16_t((std::uint8_t(control_[0]) << 8) | std::uint8_t(control_[1]));
            if (websocketpp::close::status::invalid(close_code_) || websocketpp::close::status::reserved(close_code_))
                return {1002, "invalid close code"};
            control_.erase(0, 2);
            if (!is_utf8(control_.data(), control_.size())) return {1007, "close reason is not UTF-8"};
        }
        closed_ = true;
        on(frame_event::close, std::string_view(control_));
        return {};
    }

    /// Ready for the next frame's header (the header's bytes stay readable
    /// through opcode() and fin() until then).
    void end_frame_header() {
        header_len_ = 0;
        in_payload_ = false;
    }

    // Eight bytes at a time: the 4-byte mask repeats within a word.
    void unmask(char* data, std::size_t n) {
        unsigned char word_mask[8];
        for (std::size_t k = 0; k < 8; ++k) word_mask[k] = std::uint8_t(mask_[(mask_at_ + k) & 3]);
        std::uint64_t m = 0;
        std::memcpy(&m, word_mask, 8);
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t w = 0;
            std::memcpy(&w, data + i, 8);
            w ^= m;
            std::memcpy(data + i, &w, 8);
        }
        for (; i < n; ++i) data[i] = char(data[i] ^ mask_[(mask_at_ + i) & 3]);
        mask_at_ = (mask_at_ + n) & 3;
    }

    // Bytes at the start of data that are ASCII, in whole words: the UTF-8
    // automaton, one byte at a time, need only see the rest.
    static std::size_t ascii_prefix(char const* data, std::size_t n) {
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t w = 0;
            std::memcpy(&w, data + i, 8);
            if (w & 0x8080808080808080ull) break;
        }
        return i;
    }

    static bool is_utf8(char const* data, std::size_t n) {
        websocketpp::utf8_validator::validator v;
        return v.decode(data + ascii_prefix(data, n), data + n) && v.complete();
    }

    // A fragment continues the message's validation; ASCII keeps a validator
    // that is between characters where it is.
    bool continues_utf8(char const* data, std::size_t n) {
        std::size_t const skip = utf8_.complete() ? ascii_prefix(data, n) : 0;
        return utf8_.decode(data + skip, data + n);
    }

    frame_error fail(frame_error e) {
        closed_ = true;
        message_ = std::string();
        return e;
    }

    std::size_t max_;
    std::uint64_t remaining_ = 0;  // payload bytes of the current frame still to come
    std::string message_;          // fragments of the current message read so far
    std::string control_;          // the current control frame's payload
    websocketpp::utf8_validator::validator utf8_;
    char header_[14] = {};
    char mask_[4] = {};
    std::uint8_t header_len_ = 0;
    std::uint8_t mask_at_ = 0;
    std::uint8_t message_opcode_ = 0;  // text or binary while a fragmented message is read
    bool in_payload_ = false;
    bool closed_ = false;
    std::uint16_t close_code_ = 0;
};

/// Writes the header of an unmasked server frame (RFC 6455 §5.2) for a
/// payload of `size` bytes into `out` (at least 10 bytes) and returns its length.
inline std::size_t frame_header(std::uint8_t opcode, std::uint64_t size, char* out) {
    out[0] = char(0x80 | opcode);
    if (size < 126) {
        out[1] = char(size);
        return 2;
    }
    if (size <= 0xFFFF) {
        out[1] = char(126);
        out[2] = char(size >> 8);
        out[3] = char(size & 0xFF);
        return 4;
    }
    out[1] = char(127);
    for (int i = 0; i < 8; ++i) out[2 + i] = char((size >> (56 - 8 * i)) & 0xFF);
    return 10;
}

/// A whole server control frame: close with `code` and `reason` (cut to 123
/// bytes, §5.5), ping or pong with `payload` (cut to 125 bytes).
inline std::string close_frame(std::uint16_t code, std::string_view reason) {
    if (reason.size() > 123) {
        std::size_t end = 123;
        while (end > 0 && (std::uint8_t(reason[end]) & 0xC0) == 0x80) --end;  // not inside a UTF-8 sequence
        reason = reason.substr(0, end);
    }
    std::string f(2, '\0');
    f[0] = char(0x80 | ws_opcode::close);
    f[1] = char(2 + reason.size());
    f += char(code >> 8);
    f += char(code & 0xFF);
    f += reason;
    return f;
}

inline std::string control_frame(std::uint8_t opcode, std::string_view payload) {
    if (payload.size() > 125) payload = payload.substr(0, 125);
    std::string f(2, '\0');
    f[0] = char(0x80 | opcode);
    f[1] = char(payload.size());
    f += payload;
    return f;
}

}  // namespace mesa::transport::detail
