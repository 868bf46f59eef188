#pragma once
// Random version 4 UUIDs: the id format of Node portals, also used for
// server instance ids.
#include <random>
#include <string>

namespace mesa::detail {

inline std::string uuid_v4() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_int_distribution<int> hex(0, 15);
    std::string id = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx";
    for (auto& c : id) {
        if (c == 'x')
            c = "0123456789abcdef"[hex(rng)];
        else if (c == 'y')
            c = "89ab"[hex(rng) & 3];
    }
    return id;
}

}  // namespace mesa::detail
