#pragma once
// mesa-cpp is built on standalone Asio and on websocketpp in its C++11
// standard-library mode. Both are chosen by macros that must be defined before
// the first Asio or websocketpp header of every translation unit; without them
// websocketpp silently falls back to Boost (Boost.Asio, Boost.Regex), and the
// first error is far from the cause. The pkg-config files (mesa-cpp*), the
// CMake targets (mesa::*) and meson's mesa dependencies add both. Included
// first by every public header that includes Asio or websocketpp.
//
// A standard header comes before Asio's: Asio's configuration tests
// libstdc++'s macros (_GLIBCXX_HAVE_ALIGNED_ALLOC) without including any, so a
// translation unit that starts with an Asio header allocates its handlers
// with operator new and one that does not with aligned_alloc; a program mixing
// both frees memory the wrong way (an ODR violation AddressSanitizer reports as
// alloc-dealloc-mismatch). Included first, this header makes it the same
// everywhere.
#include <cstddef>

// Asio defines ASIO_STANDALONE itself when it is included first (C++11 and
// later): missing here, the flag was forgotten or websocketpp came first.
#if !defined(ASIO_STANDALONE)
#error "mesa-cpp needs -DASIO_STANDALONE (standalone Asio): pkg-config mesa-cpp and CMake's mesa::mesa add it"
#endif
#if !defined(_WEBSOCKETPP_CPP11_STL_)
#error "mesa-cpp needs -D_WEBSOCKETPP_CPP11_STL_ (websocketpp's C++11 mode): pkg-config and mesa::mesa add it"
#endif
