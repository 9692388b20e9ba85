// GGUF writer (see gguf_writer.h). Layout, as gguf-py and ggml write it: header, key/values,
// tensor infos, zero padding to the alignment, then each tensor's bytes padded to the alignment.
// A file without tensors ends right after its key/values (no padding), like llama.cpp's vocab
// files, so those read back and write out byte for byte too.
#include "gguf/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <tuple>

namespace hangar::gguf {
namespace {

template <typename T>
void put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian host, as GGUF
  out->append(b, sizeof(T));
}

void put_string(std::string* out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out->append(s);
}

// Values are written with their own type; array items must match the array's element type.
Status put_value(std::string* out, const Value& v, const std::string& key) {
  switch (v.type) {
    case ValueType::kUint8: put(out, std::get<uint8_t>(v.data)); break;
    case ValueType::kInt8: put(out, std::get<int8_t>(v.data)); break;
    case ValueType::kUint16: put(out, std::get<uint16_t>(v.data)); break;
    case ValueType::kInt16: put(out, std::get<int16_t>(v.data)); break;
    case ValueType::kUint32: put(out, std::get<uint32_t>(v.data)); break;
    case ValueType::kInt32: put(out, std::get<int32_t>(v.data)); break;
    case ValueType::kFloat32: put(out, std::get<float>(v.data)); break;
    case ValueType::kBool: put<uint8_t>(out, std::get<bool>(v.data) ? 1 : 0); break;
    case ValueType::kString: put_string(out, std::get<std::string>(v.data)); break;
    case ValueType::kUint64: put(out, std::get<uint64_t>(v.data)); break;
    case ValueType::kInt64: put(out, std::get<int64_t>(v.data)); break;
    case ValueType::kFloat64: put(out, std::get<double>(v.data)); break;
    case ValueType::kArray: {
      const Array& a = std::get<Array>(v.data);
      put<uint32_t>(out, static_cast<uint32_t>(a.elem_type));
      if (a.items.rejected() > 0) {
        return invalid_argument_error("gguf writer: key '" + key + "': array of " +
                                      std::string(value_type_name(a.elem_type)) + " was given " +
                                      std::to_string(a.items.rejected()) +
                                      " items of another type");
      }
      put<uint64_t>(out, a.items.size());
      for (const Value& item : a.items) {
        if (item.type != a.elem_type) {
          return invalid_argument_error("gguf writer: key '" + key + "': array of " +
                                        std::string(value_type_name(a.elem_type)) +
                                        " holds a " + std::string(value_type_name(item.type)));
        }
        HANGAR_RETURN_IF_ERROR(put_value(out, item, key));
      }
      break;
    }
  }
  if (v.data.index() != static_cast<size_t>(v.type)) {
    return invalid_argument_error("gguf writer: key '" + key + "': value type " +
                                  std::string(value_type_name(v.type)) +
                                  " does not match its data");
  }
  return ok_status();
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void GgufWriter::set(std::string key, Value value) {
  for (auto& kv : metadata_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

Status GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape,
                              std::vector<uint8_t> data) {
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return already_exists_error("gguf writer: duplicate tensor '" + name + "'");
  }
  if (shape.size() > 4) {
    return invalid_argument_error("gguf writer: tensor '" + name + "' has " +
                                  std::to_string(shape.size()) + " dimensions (at most 4)");
  }
  uint64_t rows = 1;
  for (size_t d = 1; d < shape.size(); ++d) {
    if (shape[d] < 0) return invalid_argument_error("gguf writer: tensor '" + name + "' has a negative dimension");
    rows *= static_cast<uint64_t>(shape[d]);
  }
  const int64_t ne0 = shape.empty() ? 1 : shape[0];
  const std::optional<uint64_t> rb = row_bytes(type, ne0);
  if (!rb) {
    return invalid_argument_error("gguf writer: tensor '" + name + "' row of " +
                                  std::to_string(ne0) + " elements is not a multiple of the " +
                                  std::string(type_traits(type).name) + " block size");
  }
  if (*rb * rows != data.size()) {
    return invalid_argument_error("gguf writer: tensor '" + name + "' needs " +
                                  std::to_string(*rb * rows) + " bytes of " +
                                  std::string(type_traits(type).name) + " data, got " +
                                  std::to_string(data.size()));
  }
  tensors_.push_back({std::move(name), type, std::move(shape), std::move(data)});
  return ok_status();
}

// The header (everything before the data region, padding included) and the data region's
// alignment.
static StatusOr<std::string> header_bytes(
    const std::vector<std::pair<std::string, Value>>& metadata, uint64_t alignment,
    const std::vector<std::tuple<const std::string*, GgmlType, const std::vector<int64_t>*,
                                 uint64_t>>& infos) {
  std::string out;
  out.append("GGUF", 4);
  put<uint32_t>(&out, 3);
  put<uint64_t>(&out, infos.size());
  put<uint64_t>(&out, metadata.size());
  for (const auto& [key, value] : metadata) {
    put_string(&out, key);
    put<uint32_t>(&out, static_cast<uint32_t>(value.type));
    HANGAR_RETURN_IF_ERROR(put_value(&out, value, key));
  }
  uint64_t offset = 0;
  for (const auto& [name, type, shape, bytes] : infos) {
    put_string(&out, *name);
    put<uint32_t>(&out, static_cast<uint32_t>(shape->size()));
    for (int64_t ne : *shape) put<int64_t>(&out, ne);
    put<uint32_t>(&out, static_cast<uint32_t>(type));
    put<uint64_t>(&out, offset);
    offset += align_up(bytes, alignment);
  }
  if (!infos.empty()) out.resize(align_up(out.size(), alignment), '\0');
  return out;
}

namespace {

StatusOr<uint64_t> writer_alignment(const std::vector<std::pair<std::string, Value>>& metadata) {
  for (const auto& [key, value] : metadata) {
    if (key != "general.alignment") continue;
    const std::optional<uint64_t> a = value.as_uint();
    if (!a || *a == 0 || (*a & (*a - 1)) != 0 || *a > (1u << 30)) {
      return invalid_argument_error("gguf writer: general.alignment must be a power of two");
    }
    return *a;
  }
  return uint64_t{32};
}

}  // namespace

StatusOr<std::vector<uint8_t>> GgufWriter::to_bytes() const {
  HANGAR_ASSIGN_OR_RETURN(const uint64_t alignment, writer_alignment(metadata_));
  std::vector<std::tuple<const std::string*, GgmlType, const std::vector<int64_t>*, uint64_t>> infos;
  for (const PendingTensor& t : tensors_) infos.emplace_back(&t.name, t.type, &t.shape, t.data.size());
  HANGAR_ASSIGN_OR_RETURN(const std::string header, header_bytes(metadata_, alignment, infos));
  uint64_t total = header.size();
  for (const PendingTensor& t : tensors_) total += align_up(t.data.size(), alignment);
  std::vector<uint8_t> out;
  out.reserve(total);
  out.insert(out.end(), header.begin(), header.end());
  for (const PendingTensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(out.size() + (align_up(t.data.size(), alignment) - t.data.size()), 0);
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  HANGAR_ASSIGN_OR_RETURN(const uint64_t alignment, writer_alignment(metadata_));
  std::vector<std::tuple<const std::string*, GgmlType, const std::vector<int64_t>*, uint64_t>> infos;
  for (const PendingTensor& t : tensors_) infos.emplace_back(&t.name, t.type, &t.shape, t.data.size());
  HANGAR_ASSIGN_OR_RETURN(const std::string header, header_bytes(metadata_, alignment, infos));

  const std::string partial = path + ".partial";
  std::FILE* f = std::fopen(partial.c_str(), "wb");
  if (f == nullptr) {
    return invalid_argument_error("gguf writer: cannot create '" + partial + "': " +
                                  std::strerror(errno));
  }
  static const char kZeros[64] = {};  // alignment padding source; alignment > 64 loops
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const PendingTensor& t : tensors_) {
    if (!ok) break;
    ok = std::fwrite(t.data.data(), 1, t.data.size(), f) == t.data.size();
    uint64_t pad = align_up(t.data.size(), alignment) - t.data.size();
    while (ok && pad > 0) {
      const size_t n = pad < sizeof(kZeros) ? pad : sizeof(kZeros);
      ok = std::fwrite(kZeros, 1, n, f) == n;
      pad -= n;
    }
  }
  const int err = errno;
  if (std::fclose(f) != 0) ok = false;
  if (!ok) {
    std::remove(partial.c_str());
    return resource_exhausted_error("gguf writer: writing '" + partial + "' failed: " +
                                    std::strerror(err));
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    const int rerr = errno;
    std::remove(partial.c_str());
    return invalid_argument_error("gguf writer: cannot rename '" + partial + "' to '" + path +
                                  "': " + std::strerror(rerr));
  }
  return ok_status();
}

}  // namespace hangar::gguf
