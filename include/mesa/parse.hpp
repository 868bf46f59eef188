#pragma once
// Validating parser for frames received from clients and services. It never
// throws: a bad frame yields a parse_error naming the problem and the close
// code the server answers it with.
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>  // basic_parser with a handler of ours

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <mesa/close_code.hpp>
#include <mesa/message.hpp>

namespace mesa {

/// Deepest JSON nesting accepted in a frame; deeper input is refused before it
/// can exhaust the stack.
inline constexpr std::size_t max_json_depth = 64;

struct parse_error {
    std::uint16_t close_code = close_code::invalid_payload;
    std::string reason;
};

/// Either a message or the reason it was refused.
class parse_result {
public:
    parse_result(message m) : value_(std::move(m)) {}
    parse_result(parse_error e) : value_(std::move(e)) {}

    explicit operator bool() const noexcept { return value_.index() == 0; }
    message& value() { return std::get<message>(value_); }
    message const& value() const { return std::get<message>(value_); }
    parse_error const& error() const { return std::get<parse_error>(value_); }

private:
    std::variant<message, parse_error> value_;
};

namespace detail {

inline parse_error invalid(std::string reason) { return parse_error{close_code::invalid_payload, std::move(reason)}; }

inline bool as_int64(json::value const& v, std::int64_t& out) {
    if (v.is_int64()) {
        out = v.get_int64();
        return true;
    }
    if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
        out = static_cast<std::int64_t>(v.get_uint64());
        return true;
    }
    return false;
}

/// False when `v` holds a number JSON cannot write back (1e999 parses to
/// infinity, which would be serialized as the invalid `Infinity`). Depth is
/// bounded by max_json_depth at parse time.
inline bool all_finite(json::value const& v) {
    switch (v.kind()) {
        case json::kind::double_:
            return std::isfinite(v.get_double());
        case json::kind::array:
            for (auto const& item : v.get_array())
                if (!all_finite(item)) return false;
            return true;
        case json::kind::object:
            for (auto const& item : v.get_object())
                if (!all_finite(item.value())) return false;
            return true;
        default:
            return true;
    }
}

}  // namespace detail

/// Validates an already parsed JSON value as a message.
inline parse_result to_message(json::value&& v) {
    if (!v.is_object()) return detail::invalid("frame is not a JSON object");
    if (!detail::all_finite(v)) return detail::invalid("a number is out of range");
    json::object& o = v.get_object();
    message m;

    auto const* op = o.if_contains("op");
    if (!op) return detail::invalid("missing \"op\"");
    std::int64_t opv = 0;
    if (!detail::as_int64(*op, opv) || opv < 0 || opv > 255)
        return detail::invalid("\"op\" must be an integer between 0 and 255");
    m.op = static_cast<int>(opv);

    if (auto* d = o.if_contains("d"); d && !d->is_null()) {
        if (!d->is_object()) return detail::invalid("\"d\" must be an object");
        m.d = std::move(d->get_object());
    }
    if (auto const* t = o.if_contains("t"); t && !t->is_null()) {
        if (!t->is_string()) return detail::invalid("\"t\" must be a string");
        m.t = std::string(t->get_string());
    }
    if (auto const* s = o.if_contains("s"); s && !s->is_null()) {
        std::int64_t sv = 0;
        if (!detail::as_int64(*s, sv) || sv < 1) return detail::invalid("\"s\" must be an integer >= 1");
        m.s = sv;
    }
    if (auto const* opt = o.if_contains("o"); opt && !opt->is_null()) {
        if (!opt->is_object()) return detail::invalid("\"o\" must be an object");
        if (auto const* sync = opt->get_object().if_contains("sync"); sync && !sync->is_null()) {
            if (!sync->is_bool()) return detail::invalid("\"o.sync\" must be a boolean");
            m.sync = sync->get_bool();
        }
    }
    return m;
}

namespace detail {

/// Builds a json::value as Boost.JSON's own parser does, except that each
/// double is read from its text by std::from_chars (correctly rounded):
/// Boost 1.81 may be 1 ulp off (0.20299482355033738 came back as
/// ...35E-1), where the reference's JSON.parse round-trips every double.
class exact_number_handler {
public:
    static constexpr std::size_t max_array_size = json::array::max_size();
    static constexpr std::size_t max_object_size = json::object::max_size();
    static constexpr std::size_t max_string_size = json::string::max_size();
    static constexpr std::size_t max_key_size = json::string::max_size();

    exact_number_handler() { st.reset(); }
    json::value release() { return st.release(); }

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_object_begin(boost::system::error_code&) { return true; }
    bool on_object_end(std::size_t n, boost::system::error_code&) {
        st.push_object(n);
        return true;
    }
    bool on_array_begin(boost::system::error_code&) { return true; }
    bool on_array_end(std::size_t n, boost::system::error_code&) {
        st.push_array(n);
        return true;
    }
    bool on_key_part(json::string_view s, std::size_t, boost::system::error_code&) {
        st.push_chars(s);
        return true;
    }
    bool on_key(json::string_view s, std::size_t, boost::system::error_code&) {
        st.push_key(s);
        return true;
    }
    bool on_string_part(json::string_view s, std::size_t, boost::system::error_code&) {
        st.push_chars(s);
        return true;
    }
    bool on_string(json::string_view s, std::size_t, boost::system::error_code&) {
        st.push_string(s);
        return true;
    }
    bool on_number_part(json::string_view s, boost::system::error_code&) {
        number_.append(s.data(), s.size());
        return true;
    }
    bool on_int64(std::int64_t i, json::string_view, boost::system::error_code&) {
        number_.clear();
        st.push_int64(i);
        return true;
    }
    bool on_uint64(std::uint64_t u, json::string_view, boost::system::error_code&) {
        number_.clear();
        st.push_uint64(u);
        return true;
    }
    bool on_double(double d, json::string_view s, boost::system::error_code&) {
        // Read straight from `s`; only a number split over writes (parts come
        // when the parser suspends inside it) is read from its collected parts.
        std::string_view text(s.data(), s.size());
        if (!number_.empty()) text = number_.append(s.data(), s.size());
        double exact = 0;
        auto const r = std::from_chars(text.data(), text.data() + text.size(), exact);
        // Out of range (1e400): Boost's infinity, which the caller refuses.
        st.push_double(r.ec == std::errc() ? exact : d);
        number_.clear();
        return true;
    }
    bool on_bool(bool b, boost::system::error_code&) {
        st.push_bool(b);
        return true;
    }
    bool on_null(boost::system::error_code&) {
        st.push_null();
        return true;
    }
    bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(json::string_view, boost::system::error_code&) { return true; }

private:
    json::value_stack st;
    std::string number_;  // the parts of a number split over writes
};

}  // namespace detail

/// Parses JSON text with the nesting bound; false (and why) on bad input.
/// Doubles are read exactly (see detail::exact_number_handler).
inline bool parse_json(std::string_view text, json::value& out, std::string& error) {
    json::parse_options options;
    options.max_depth = max_json_depth;
    json::basic_parser<detail::exact_number_handler> parser(options);
    boost::system::error_code ec;
    std::size_t const used = parser.write_some(false, text.data(), text.size(), ec);
    if (!ec && used < text.size()) ec = json::error::extra_data;
    if (ec) {
        error = "invalid JSON: " + ec.message();
        return false;
    }
    out = parser.handler().release();
    return true;
}

/// Parses the text of one frame.
inline parse_result parse(std::string_view text) {
    json::value v;
    std::string error;
    if (!parse_json(text, v, error)) return detail::invalid(std::move(error));
    return to_message(std::move(v));
}

}  // namespace mesa
