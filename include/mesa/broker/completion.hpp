#pragma once
// Completion handler types shared by every broker.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace mesa::broker {

using completion = std::function<void(std::error_code)>;
using contains_handler = std::function<void(std::error_code, std::vector<bool>)>;
using members_handler = std::function<void(std::error_code, std::vector<std::string>)>;
using count_handler = std::function<void(std::error_code, std::int64_t)>;
/// Receives the stored messages (JSON texts) in the order they were appended.
using take_handler = std::function<void(std::error_code, std::vector<std::string>)>;
/// Receives each publication on a subscribed channel.
using channel_handler = std::function<void(std::string_view payload)>;

}  // namespace mesa::broker
