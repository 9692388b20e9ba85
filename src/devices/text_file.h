#pragma once
// Private to src/devices: reading the small text files devices are described by (/proc,
// /sys/fs/cgroup, the devices file) without trusting their size, and parsing their numbers.
//
// Thread-safety: pure functions.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hangar::devices {

// The whole file, or NotFound (missing) / InvalidArgument (unreadable, or more than `max_bytes`:
// /proc files report size 0, so the limit is enforced while reading).
StatusOr<std::string> read_text_file(const std::string& path, size_t max_bytes);

// `s` without leading and trailing ASCII whitespace.
std::string_view trim(std::string_view s);

// A decimal unsigned integer that is all of `s` (after trim), or nullopt (empty, a sign, other
// characters, more than 64 bits).
std::optional<uint64_t> parse_u64(std::string_view s);

// a * b, or nullopt when it does not fit in 64 bits.
std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b);

}  // namespace hangar::devices
