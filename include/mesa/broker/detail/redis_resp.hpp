#pragma once
// RESP encoding and parsing through hiredis (no I/O: the broker does that on
// Asio). Only redisFormatCommandArgv and the redisReader API are used.
#include <hiredis/hiredis.h>

#include <array>
#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace mesa::broker::detail {

struct redis_reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using redis_reply_ptr = std::unique_ptr<redisReply, redis_reply_deleter>;

inline std::string_view redis_text(redisReply const& r) noexcept { return {r.str ? r.str : "", r.len}; }

/// Appends one command, encoded in RESP, to `out`.
inline void redis_append_command(std::string& out, std::string_view const* args, std::size_t count) {
    std::vector<char const*> argv(count);
    std::vector<std::size_t> lens(count);
    for (std::size_t i = 0; i < count; ++i) {
        argv[i] = args[i].data();
        lens[i] = args[i].size();
    }
    char* encoded = nullptr;
    int const n = redisFormatCommandArgv(&encoded, static_cast<int>(count), argv.data(), lens.data());
    if (n < 0 || !encoded) throw std::bad_alloc();
    out.append(encoded, static_cast<std::size_t>(n));
    redisFreeCommand(encoded);
}

/// A command of any number of arguments, encoded in RESP.
inline std::string redis_command_argv(std::vector<std::string_view> const& args) {
    std::string out;
    redis_append_command(out, args.data(), args.size());
    return out;
}

template <class... Args>
std::string redis_command(Args const&... args) {
    std::array<std::string_view, sizeof...(Args)> const argv{std::string_view(args)...};
    std::string out;
    redis_append_command(out, argv.data(), argv.size());
    return out;
}

/// The most elements one RESP array may announce. hiredis 0.14 allocates an
/// array's element pointers when it reads the header, so a reply announcing
/// half a billion elements took 4 GiB before any arrived; 4M elements (32 MiB
/// of pointers) is more than any reply of ours holds.
inline constexpr long long redis_max_array_elements = 1 << 22;

/// An incremental RESP parser: feed bytes, take the complete replies.
class redis_reader {
public:
    redis_reader() : reader_(redisReaderCreate()) {
        if (!reader_) throw std::bad_alloc();
        reader_->fn = bounded(reader_->fn);
    }

    /// False on a protocol error (see error()).
    bool feed(char const* data, std::size_t size) { return redisReaderFeed(reader_.get(), data, size) == REDIS_OK; }

    enum class result { reply, none, error };
    /// The next complete reply, if any.
    result next(redis_reply_ptr& out) {
        void* reply = nullptr;
        refused() = false;
        if (redisReaderGetReply(reader_.get(), &reply) != REDIS_OK) {
            if (refused()) error_ = "an array of more than " + std::to_string(redis_max_array_elements) + " elements";
            return result::error;
        }
        if (!reply) return result::none;
        out.reset(static_cast<redisReply*>(reply));
        return result::reply;
    }

    std::string error() const { return error_.empty() ? std::string(reader_->errstr) : error_; }

private:
    // hiredis's reply functions with createArray refusing oversized arrays
    // (a refusal is hiredis's out-of-memory error, told apart by refused()).
    template <class F>
    struct length_of;
    template <class R, class Task, class Length>
    struct length_of<R (*)(Task, Length)> {
        using type = Length;
    };
    using array_length = typename length_of<decltype(redisReplyObjectFunctions::createArray)>::type;

    static bool& refused() noexcept {
        thread_local bool value = false;
        return value;
    }
    static redisReplyObjectFunctions* bounded(redisReplyObjectFunctions* hiredis) {
        static redisReplyObjectFunctions* const original = hiredis;
        static redisReplyObjectFunctions functions = [] {
            redisReplyObjectFunctions f = *original;
            f.createArray = [](redisReadTask const* task, array_length length) -> void* {
                if (static_cast<long long>(length) > redis_max_array_elements) {
                    refused() = true;
                    return nullptr;
                }
                return original->createArray(task, length);
            };
            return f;
        }();
        return &functions;
    }

    std::string error_;
    struct deleter {
        void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
    };
    std::unique_ptr<redisReader, deleter> reader_;
};

}  // namespace mesa::broker::detail
