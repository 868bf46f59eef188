// Replays the seed corpus of each fuzz target (test/fuzz/corpus/<target>/)
// through its LLVMFuzzerTestOneInput, built with the project's compiler and
// without libFuzzer, so that `meson test` checks the regression seeds too
// (.ci/fuzz runs the real fuzzer). Each target's entry point is compiled
// under its own name (-DLLVMFuzzerTestOneInput=...), see test/meson.build.
// A broken invariant aborts; an empty corpus fails.
//
//   replay_corpus <target> <corpus directory>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

extern "C" int mesa_fuzz_parse(std::uint8_t const* data, std::size_t size);
extern "C" int mesa_fuzz_server(std::uint8_t const* data, std::size_t size);
extern "C" int mesa_fuzz_redis_reply(std::uint8_t const* data, std::size_t size);
extern "C" int mesa_fuzz_ws_protocol(std::uint8_t const* data, std::size_t size);

int main(int argc, char** argv) {
    std::map<std::string, int (*)(std::uint8_t const*, std::size_t)> const targets{
        {"fuzz_parse", mesa_fuzz_parse},
        {"fuzz_server", mesa_fuzz_server},
        {"fuzz_redis_reply", mesa_fuzz_redis_reply},
        {"fuzz_ws_protocol", mesa_fuzz_ws_protocol}};
    auto target = argc == 3 ? targets.find(argv[1]) : targets.end();
    if (target == targets.end()) {
        std::fprintf(stderr,
                     "usage: replay_corpus fuzz_parse|fuzz_server|fuzz_redis_reply|fuzz_ws_protocol CORPUS_DIR\n");
        return 2;
    }
    std::size_t replayed = 0;
    for (auto const& entry : std::filesystem::directory_iterator(argv[2])) {
        if (!entry.is_regular_file()) continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::string const bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        std::printf("%s\n", entry.path().filename().c_str());
        std::fflush(stdout);  // the input that aborts is the last one printed
        target->second(reinterpret_cast<std::uint8_t const*>(bytes.data()), bytes.size());
        ++replayed;
    }
    if (replayed == 0) {
        std::fprintf(stderr, "no seed in %s\n", argv[2]);
        return 1;
    }
    std::printf("%s: %zu seeds replayed\n", argv[1], replayed);
    return 0;
}
