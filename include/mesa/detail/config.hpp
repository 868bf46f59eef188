#pragma once
// mesa-cpp is built on standalone Asio and on websocketpp in its C++11
// standard-library mode. Both are chosen by macros that must be defined before
// the first Asio or websocketpp header of every translation unit; without them
// websocketpp silently falls back to Boost (Boost.Asio, Boost.Regex), and the
// first error is far from the cause. The pkg-config files (mesa-cpp*), the
// CMake targets (mesa::*) and meson's mesa dependencies add both. Included
// first by <mesa/mesa.hpp>, <mesa/client.hpp> and the transport headers.
//
// Asio defines ASIO_STANDALONE itself when it is included first (C++11 and
// later): missing here, the flag was forgotten or websocketpp came first.
#if !defined(ASIO_STANDALONE)
#error "mesa-cpp needs -DASIO_STANDALONE (standalone Asio): pkg-config mesa-cpp and CMake's mesa::mesa add it"
#endif
#if !defined(_WEBSOCKETPP_CPP11_STL_)
#error "mesa-cpp needs -D_WEBSOCKETPP_CPP11_STL_ (websocketpp's C++11 mode): pkg-config and mesa::mesa add it"
#endif
