#pragma once
// What a type must provide to be used as the Transport of mesa::server.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/io_context.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <mesa/transport/settings.hpp>

namespace mesa::transport {

namespace detail {

template <class T, class = void>
struct has_types : std::false_type {};
template <class T>
struct has_types<T, std::void_t<typename T::options, typename T::connection_ptr, typename T::frame>> : std::true_type {
};

template <class T, class = void>
struct has_operations : std::false_type {};
template <class T>
struct has_operations<
    T,
    std::void_t<decltype(std::declval<T&>().start(events<typename T::connection_ptr>())),
                decltype(std::declval<T&>().stop_listening()), decltype(std::uint16_t(std::declval<T&>().local_port())),
                decltype(typename T::frame(T::prepare(std::string()))),
                decltype(typename T::frame(T::join(std::declval<std::vector<typename T::frame> const&>()))),
                decltype(T::send(std::declval<typename T::connection_ptr const&>(),
                                 std::declval<typename T::frame const&>())),
                decltype(std::size_t(T::buffered_bytes(std::declval<typename T::connection_ptr const&>()))),
                decltype(std::size_t(T::frame_size(std::declval<typename T::frame const&>()))),
                decltype(T::close(std::declval<typename T::connection_ptr const&>(), std::uint16_t(), std::string())),
                decltype(std::declval<typename T::connection_ptr const&>()->context = nullptr)>> : std::true_type {};

}  // namespace detail

/// Checks every transport requirement with a sentence naming what is missing.
template <class T>
constexpr bool check() {
    static_assert(detail::has_types<T>::value,
                  "Transport requirement: nested types `options`, `connection_ptr` and `frame`");
    static_assert(std::is_constructible_v<T, asio::io_context&, settings, typename T::options>,
                  "Transport requirement: a constructor (asio::io_context&, settings, options)");
    static_assert(detail::has_operations<T>::value,
                  "Transport requirement: start(events), stop_listening(), local_port(), static prepare(payload), "
                  "static join(vector of frames), static send(con, frame), static buffered_bytes(con), static "
                  "frame_size(frame), static close(con, code, reason), "
                  "and a `void* context` slot on each connection");
    return true;
}

}  // namespace mesa::transport
