// `hangar inspect FILE.gguf [--json]`: the header, every metadata key, the tensor table and the
// bytes per type of a GGUF file, as text (long arrays summarized) or as JSON (everything in full).
#include <cinttypes>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/command.h"
#include "gguf/gguf.h"

namespace hangar::cli {
namespace {

using gguf::Value;
using gguf::ValueType;

nlohmann::json value_to_json(const Value& v) {
  switch (v.type) {
    case ValueType::kUint8: return std::get<uint8_t>(v.data);
    case ValueType::kInt8: return std::get<int8_t>(v.data);
    case ValueType::kUint16: return std::get<uint16_t>(v.data);
    case ValueType::kInt16: return std::get<int16_t>(v.data);
    case ValueType::kUint32: return std::get<uint32_t>(v.data);
    case ValueType::kInt32: return std::get<int32_t>(v.data);
    case ValueType::kUint64: return std::get<uint64_t>(v.data);
    case ValueType::kInt64: return std::get<int64_t>(v.data);
    case ValueType::kFloat32: return static_cast<double>(std::get<float>(v.data));
    case ValueType::kFloat64: return std::get<double>(v.data);
    case ValueType::kBool: return std::get<bool>(v.data);
    case ValueType::kString: return std::get<std::string>(v.data);
    case ValueType::kArray: {
      nlohmann::json arr = nlohmann::json::array();
      for (const Value& item : std::get<gguf::Array>(v.data).items) arr.push_back(value_to_json(item));
      return arr;
    }
  }
  return nullptr;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Strings from the file — values, key names, tensor names — are shown JSON-quoted, so control
// characters (a newline, an escape sequence that would drive the terminal) and invalid UTF-8
// stay visible and harmless.
std::string quoted(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string scalar_text(const Value& v) {
  if (v.type == ValueType::kString) return quoted(std::get<std::string>(v.data));
  if (v.type == ValueType::kFloat32 || v.type == ValueType::kFloat64) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.9g", *v.as_float());
    return buf;
  }
  return value_to_json(v).dump();
}

constexpr size_t kShownItems = 8;         // text mode shows the first items of long arrays
constexpr size_t kLongStringChars = 200;  // and cuts long strings

std::string value_text(const Value& v) {
  if (v.type != ValueType::kArray) {
    std::string s = scalar_text(v);
    if (s.size() > kLongStringChars) {
      size_t cut = kLongStringChars;  // back up to a UTF-8 character boundary
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
      s = s.substr(0, cut) + "… (" + std::to_string(s.size()) + " chars)";
    }
    return s;
  }
  const gguf::Array& a = std::get<gguf::Array>(v.data);
  std::string s = "[" + std::string(gguf::value_type_name(a.elem_type)) + " × " +
                  std::to_string(a.items.size()) + "] [";
  for (size_t i = 0; i < a.items.size() && i < kShownItems; ++i) {
    s += (i ? ", " : "") + value_text(a.items[i]);
  }
  if (a.items.size() > kShownItems) s += ", …";
  return s + "]";
}

int inspect(const std::string& path, bool json) {
  auto file = gguf::GgufFile::open(path);
  if (!file.ok()) {
    std::fprintf(stderr, "hangar inspect: %s\n", file.status().message().c_str());
    return 1;
  }
  const gguf::GgufFile& f = **file;
  if (json) {
    nlohmann::json out;
    out["version"] = f.version();
    out["alignment"] = f.alignment();
    out["data_offset"] = f.data_offset();
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& [key, value] : f.metadata()) meta[key] = value_to_json(value);
    out["metadata"] = std::move(meta);
    nlohmann::json tensors = nlohmann::json::array();
    for (const gguf::TensorInfo& t : f.tensors()) {
      tensors.push_back({{"name", t.name},
                         {"type", std::string(gguf::type_traits(t.type).name)},
                         {"shape", t.shape},
                         {"offset", t.offset},
                         {"bytes", t.bytes}});
    }
    out["tensors"] = std::move(tensors);
    const std::string text =
        out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }
  std::printf("file:        %s\n", path.c_str());
  std::printf("version:     %u\n", f.version());
  std::printf("file size:   %" PRIu64 " bytes\n", f.file_size());
  std::printf("alignment:   %u\n", f.alignment());
  std::printf("data offset: %" PRIu64 "\n", f.data_offset());
  std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
  for (const auto& [key, value] : f.metadata()) {
    std::printf("  %-44s %-8s %s\n", quoted(key).c_str(),
                std::string(gguf::value_type_name(value.type)).c_str(),
                value_text(value).c_str());
  }
  std::printf("\ntensors (%zu):\n", f.tensors().size());
  std::printf("  %-36s %-8s %-22s %14s %14s\n", "name", "type", "shape", "bytes", "offset");
  std::map<std::string, std::pair<size_t, uint64_t>> per_type;  // type → (count, bytes)
  uint64_t total = 0;
  for (const gguf::TensorInfo& t : f.tensors()) {
    const std::string type(gguf::type_traits(t.type).name);
    std::printf("  %-36s %-8s %-22s %14" PRIu64 " %14" PRIu64 "\n", quoted(t.name).c_str(),
                type.c_str(),
                shape_text(t.shape).c_str(), t.bytes, t.offset);
    per_type[type].first++;
    per_type[type].second += t.bytes;
    total += t.bytes;
  }
  std::printf("\nbytes per type:\n");
  for (const auto& [type, cb] : per_type) {
    std::printf("  %-8s %5zu tensors %14" PRIu64 " bytes\n", type.c_str(), cb.first, cb.second);
  }
  std::printf("  %-8s %5zu tensors %14" PRIu64 " bytes\n", "total", f.tensors().size(), total);
  return 0;
}

}  // namespace

void register_inspect(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand("inspect", "Show a GGUF file's header, metadata and tensors");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  app->add_option("file", *path, "the .gguf file")->required();
  app->add_flag("--json", *json, "print everything as one JSON object (arrays in full)");
  commands.push_back({app, [path, json] { return inspect(*path, *json); }});
}

}  // namespace hangar::cli
