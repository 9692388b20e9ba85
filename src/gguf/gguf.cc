// GGUF reader (see gguf.h). The parser reads the header through a bounds-checked cursor; every
// count and length is compared with the bytes left before anything is sized by it, and every
// error names the byte offset of the field at fault.
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <type_traits>

namespace hangar::gguf {

// ---- Value ----------------------------------------------------------------------------------

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUint16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUint32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "unknown";
}

std::optional<int64_t> Value::as_int() const {
  switch (type) {
    case ValueType::kUint8: return std::get<uint8_t>(data);
    case ValueType::kInt8: return std::get<int8_t>(data);
    case ValueType::kUint16: return std::get<uint16_t>(data);
    case ValueType::kInt16: return std::get<int16_t>(data);
    case ValueType::kUint32: return std::get<uint32_t>(data);
    case ValueType::kInt32: return std::get<int32_t>(data);
    case ValueType::kInt64: return std::get<int64_t>(data);
    case ValueType::kUint64: {
      const uint64_t v = std::get<uint64_t>(data);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(v);
    }
    default: return std::nullopt;
  }
}

std::optional<uint64_t> Value::as_uint() const {
  if (type == ValueType::kUint64) return std::get<uint64_t>(data);
  const std::optional<int64_t> v = as_int();
  if (!v || *v < 0) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

std::optional<double> Value::as_float() const {
  if (type == ValueType::kFloat32) return std::get<float>(data);
  if (type == ValueType::kFloat64) return std::get<double>(data);
  if (type == ValueType::kUint64) return static_cast<double>(std::get<uint64_t>(data));
  const std::optional<int64_t> v = as_int();
  if (!v) return std::nullopt;
  return static_cast<double>(*v);
}

std::optional<bool> Value::as_bool() const {
  if (type != ValueType::kBool) return std::nullopt;
  return std::get<bool>(data);
}

const std::string* Value::as_string() const { return std::get_if<std::string>(&data); }
const Array* Value::as_array() const { return std::get_if<Array>(&data); }

Value Value::u8(uint8_t v) { return Value{ValueType::kUint8, v}; }
Value Value::i8(int8_t v) { return Value{ValueType::kInt8, v}; }
Value Value::u16(uint16_t v) { return Value{ValueType::kUint16, v}; }
Value Value::i16(int16_t v) { return Value{ValueType::kInt16, v}; }
Value Value::u32(uint32_t v) { return Value{ValueType::kUint32, v}; }
Value Value::i32(int32_t v) { return Value{ValueType::kInt32, v}; }
Value Value::f32(float v) { return Value{ValueType::kFloat32, v}; }
Value Value::boolean(bool v) { return Value{ValueType::kBool, v}; }
Value Value::str(std::string v) { return Value{ValueType::kString, std::move(v)}; }
Value Value::array(ValueType elem_type, std::vector<Value> items) {
  return Value{ValueType::kArray, Array(elem_type, items)};
}
Value Value::u64(uint64_t v) { return Value{ValueType::kUint64, v}; }
Value Value::i64(int64_t v) { return Value{ValueType::kInt64, v}; }
Value Value::f64(double v) { return Value{ValueType::kFloat64, v}; }

bool operator==(const Value& a, const Value& b) {
  if (a.type != b.type || a.data.index() != b.data.index()) return false;
  // Floats compare by bits, so a NaN read back equals the NaN written.
  if (const float* fa = std::get_if<float>(&a.data)) {
    return std::memcmp(fa, &std::get<float>(b.data), sizeof(float)) == 0;
  }
  if (const double* da = std::get_if<double>(&a.data)) {
    return std::memcmp(da, &std::get<double>(b.data), sizeof(double)) == 0;
  }
  return a.data == b.data;
}

bool operator==(const Array& a, const Array& b) {
  return a.elem_type == b.elem_type && a.items == b.items;
}

// ---- Array ----------------------------------------------------------------------------------

size_t value_type_size(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool: return 1;
    case ValueType::kUint16:
    case ValueType::kInt16: return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32: return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64: return 8;
    case ValueType::kString:
    case ValueType::kArray: return 0;
  }
  return 0;
}

Array::Array(ValueType type, const std::vector<Value>& values) : elem_type(type), items(type) {
  for (const Value& v : values) items.push_back(v);
}

ArrayItems::ArrayItems() = default;
ArrayItems::ArrayItems(ValueType elem_type) : elem_type_(elem_type) {}
ArrayItems::~ArrayItems() = default;
ArrayItems::ArrayItems(const ArrayItems&) = default;
ArrayItems::ArrayItems(ArrayItems&&) noexcept = default;
ArrayItems& ArrayItems::operator=(const ArrayItems&) = default;
ArrayItems& ArrayItems::operator=(ArrayItems&&) noexcept = default;

Value ArrayItems::Iterator::operator*() const { return (*items_)[i_]; }

namespace {

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

Value ArrayItems::operator[](size_t i) const {
  const uint8_t* p = packed_.data() + i * value_type_size(elem_type_);
  switch (elem_type_) {
    case ValueType::kUint8: return Value::u8(load<uint8_t>(p));
    case ValueType::kInt8: return Value::i8(load<int8_t>(p));
    case ValueType::kUint16: return Value::u16(load<uint16_t>(p));
    case ValueType::kInt16: return Value::i16(load<int16_t>(p));
    case ValueType::kUint32: return Value::u32(load<uint32_t>(p));
    case ValueType::kInt32: return Value::i32(load<int32_t>(p));
    case ValueType::kFloat32: return Value::f32(load<float>(p));
    case ValueType::kBool: return Value::boolean(*p != 0);
    case ValueType::kUint64: return Value::u64(load<uint64_t>(p));
    case ValueType::kInt64: return Value::i64(load<int64_t>(p));
    case ValueType::kFloat64: return Value::f64(load<double>(p));
    case ValueType::kString: return Value::str(std::string(string_at(i)));
    case ValueType::kArray: return Value{ValueType::kArray, arrays_[i]};
  }
  return Value{};
}

std::string_view ArrayItems::string_at(size_t i) const {
  const uint64_t begin = i == 0 ? 0 : ends_[i - 1];
  return std::string_view(chars_).substr(begin, ends_[i] - begin);
}

const Array& ArrayItems::array_at(size_t i) const { return arrays_[i]; }

bool ArrayItems::push_back(const Value& v) {
  if (v.type != elem_type_ || v.data.index() != static_cast<size_t>(v.type)) {
    ++rejected_;
    return false;
  }
  switch (v.type) {
    case ValueType::kString: append_string(std::get<std::string>(v.data)); break;
    case ValueType::kArray: append_array(std::get<Array>(v.data)); break;
    case ValueType::kBool: {
      const uint8_t b = std::get<bool>(v.data) ? 1 : 0;
      append_packed(&b, 1);
      break;
    }
    default:
      // Every other alternative is a trivially copyable scalar of value_type_size() bytes.
      std::visit(
          [this](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_arithmetic_v<T>) {
              append_packed(reinterpret_cast<const uint8_t*>(&x), 1);
            }
          },
          v.data);
  }
  return true;
}

void ArrayItems::append_packed(const uint8_t* bytes, size_t n) {
  packed_.insert(packed_.end(), bytes, bytes + n * value_type_size(elem_type_));
  size_ += n;
}

void ArrayItems::append_string(std::string_view s) {
  chars_.append(s);
  ends_.push_back(chars_.size());
  ++size_;
}

void ArrayItems::append_array(Array a) {
  arrays_.push_back(std::move(a));
  ++size_;
}

uint64_t ArrayItems::heap_bytes() const {
  uint64_t bytes = packed_.capacity() + ends_.capacity() * sizeof(uint64_t) +
                   arrays_.capacity() * sizeof(Array);
  if (chars_.capacity() > 15) bytes += chars_.capacity() + 1;
  for (const Array& a : arrays_) bytes += a.items.heap_bytes();
  return bytes;
}

bool operator==(const ArrayItems& a, const ArrayItems& b) {
  // Packed bytes compare floats by bits, as Value's == does.
  return a.elem_type_ == b.elem_type_ && a.size_ == b.size_ && a.packed_ == b.packed_ &&
         a.chars_ == b.chars_ && a.ends_ == b.ends_ && a.arrays_ == b.arrays_;
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- Parser ---------------------------------------------------------------------------------

namespace {

constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;        // nested arrays deeper than this are rejected
constexpr uint32_t kMaxAlignment = 1u << 30;

// Smallest encoding of one value of each type, used to bound counts by the bytes left.
uint64_t min_value_bytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool: return 1;
    case ValueType::kUint16:
    case ValueType::kInt16: return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32: return 4;
    case ValueType::kString: return 8;   // the length
    case ValueType::kArray: return 12;   // element type + count
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64: return 8;
  }
  return 1;
}

bool is_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kFloat64); }

}  // namespace

class GgufParser {
 public:
  GgufParser(const uint8_t* bytes, uint64_t size, const std::string& name)
      : p_(bytes), size_(size), name_(name) {}

  Status parse(GgufFile* f);

 private:
  Status error(uint64_t at, const std::string& what) const {
    return data_loss_error("gguf '" + name_ + "': " + what + " at byte " + std::to_string(at));
  }
  uint64_t left() const { return size_ - pos_; }

  template <typename T>
  Status read(T* out, const char* what) {
    if (left() < sizeof(T)) {
      return error(pos_, std::string("file ends inside ") + what + " (" +
                             std::to_string(sizeof(T)) + " bytes needed, " +
                             std::to_string(left()) + " left)");
    }
    std::memcpy(out, p_ + pos_, sizeof(T));  // GGUF is little-endian, as are our targets
    pos_ += sizeof(T);
    return ok_status();
  }

  Status read_string(std::string* out, const std::string& what) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    HANGAR_RETURN_IF_ERROR(read(&len, "a string length"));
    if (len > left()) {
      return error(at, what + ": string length " + std::to_string(len) + " exceeds the " +
                           std::to_string(left()) + " bytes left in the file");
    }
    if (len > 15) HANGAR_RETURN_IF_ERROR(charge(len + 1, at, what));  // past the small-string buffer
    out->assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return ok_status();
  }

  Status read_value(ValueType type, Value* out, const std::string& key, int depth);
  Status read_array_items(ValueType et, uint64_t count, ArrayItems* items, const std::string& key,
                          int depth, uint64_t count_at);
  // Counts `bytes` of heap against kMaxHeaderHeapBytes; ResourceExhausted past it.
  Status charge(uint64_t bytes, uint64_t at, const std::string& what);


  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& name_;
  uint64_t heap_ = 0;  // bytes charged so far
};

Status GgufParser::read_value(ValueType type, Value* out, const std::string& key, int depth) {
  out->type = type;
  const std::string what = "key '" + key + "'";
  switch (type) {
    case ValueType::kUint8: { uint8_t v; HANGAR_RETURN_IF_ERROR(read(&v, "a uint8 value")); out->data = v; break; }
    case ValueType::kInt8: { int8_t v; HANGAR_RETURN_IF_ERROR(read(&v, "an int8 value")); out->data = v; break; }
    case ValueType::kUint16: { uint16_t v; HANGAR_RETURN_IF_ERROR(read(&v, "a uint16 value")); out->data = v; break; }
    case ValueType::kInt16: { int16_t v; HANGAR_RETURN_IF_ERROR(read(&v, "an int16 value")); out->data = v; break; }
    case ValueType::kUint32: { uint32_t v; HANGAR_RETURN_IF_ERROR(read(&v, "a uint32 value")); out->data = v; break; }
    case ValueType::kInt32: { int32_t v; HANGAR_RETURN_IF_ERROR(read(&v, "an int32 value")); out->data = v; break; }
    case ValueType::kFloat32: { float v; HANGAR_RETURN_IF_ERROR(read(&v, "a float32 value")); out->data = v; break; }
    case ValueType::kUint64: { uint64_t v; HANGAR_RETURN_IF_ERROR(read(&v, "a uint64 value")); out->data = v; break; }
    case ValueType::kInt64: { int64_t v; HANGAR_RETURN_IF_ERROR(read(&v, "an int64 value")); out->data = v; break; }
    case ValueType::kFloat64: { double v; HANGAR_RETURN_IF_ERROR(read(&v, "a float64 value")); out->data = v; break; }
    case ValueType::kBool: {
      const uint64_t at = pos_;
      uint8_t v;
      HANGAR_RETURN_IF_ERROR(read(&v, "a bool value"));
      if (v > 1) return error(at, what + ": bool value " + std::to_string(v) + " is not 0 or 1");
      out->data = v == 1;
      break;
    }
    case ValueType::kString: {
      std::string s;
      HANGAR_RETURN_IF_ERROR(read_string(&s, what));
      out->data = std::move(s);
      break;
    }
    case ValueType::kArray: {
      const uint64_t at = pos_;
      if (depth >= kMaxArrayDepth) {
        return error(at, what + ": arrays nested more than " + std::to_string(kMaxArrayDepth) +
                             " deep");
      }
      uint32_t elem = 0;
      HANGAR_RETURN_IF_ERROR(read(&elem, "an array element type"));
      if (!is_value_type(elem)) {
        return error(at, what + ": unknown array element type " + std::to_string(elem));
      }
      const uint64_t count_at = pos_;
      uint64_t count = 0;
      HANGAR_RETURN_IF_ERROR(read(&count, "an array length"));
      const ValueType et = static_cast<ValueType>(elem);
      if (count > left() / min_value_bytes(et)) {
        return error(count_at, what + ": array of " + std::to_string(count) + " " +
                                   std::string(value_type_name(et)) + " values cannot fit in the " +
                                   std::to_string(left()) + " bytes left in the file");
      }
      Array arr;
      arr.elem_type = et;
      arr.items = ArrayItems(et);
      HANGAR_RETURN_IF_ERROR(read_array_items(et, count, &arr.items, key, depth, count_at));
      out->data = std::move(arr);
      break;
    }
  }
  return ok_status();
}

Status GgufParser::read_array_items(ValueType et, uint64_t count, ArrayItems* items,
                                    const std::string& key, int depth, uint64_t count_at) {
  const std::string what = "key '" + key + "'";
  if (const size_t size = value_type_size(et); size > 0) {
    // Fixed-size elements: one bounds check (count × size fits, checked by the caller against
    // the bytes left) and one copy.
    HANGAR_RETURN_IF_ERROR(charge(count * size, count_at, what));
    if (et == ValueType::kBool) {
      for (uint64_t i = 0; i < count; ++i) {
        if (p_[pos_ + i] > 1) {
          return error(pos_ + i, what + ": bool value " + std::to_string(p_[pos_ + i]) +
                                     " is not 0 or 1");
        }
      }
    }
    items->append_packed(p_ + pos_, count);
    pos_ += count * size;
    return ok_status();
  }
  if (et == ValueType::kString) {
    // An end offset per item (as many bytes as the file's length field) plus the characters.
    HANGAR_RETURN_IF_ERROR(charge(count * sizeof(uint64_t), count_at, what));
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t at = pos_;
      uint64_t len = 0;
      HANGAR_RETURN_IF_ERROR(read(&len, "a string length"));
      if (len > left()) {
        return error(at, what + ": string length " + std::to_string(len) + " exceeds the " +
                             std::to_string(left()) + " bytes left in the file");
      }
      HANGAR_RETURN_IF_ERROR(charge(len, at, what));
      items->append_string(std::string_view(reinterpret_cast<const char*>(p_ + pos_), len));
      pos_ += len;
    }
    return ok_status();
  }
  // Nested arrays.
  HANGAR_RETURN_IF_ERROR(charge(count * sizeof(Array), count_at, what));
  for (uint64_t i = 0; i < count; ++i) {
    Value v;
    HANGAR_RETURN_IF_ERROR(read_value(ValueType::kArray, &v, key, depth + 1));
    items->append_array(std::move(std::get<Array>(v.data)));
  }
  return ok_status();
}

Status GgufParser::charge(uint64_t bytes, uint64_t at, const std::string& what) {
  if (bytes > kMaxHeaderHeapBytes - heap_) {
    return resource_exhausted_error(
        "gguf '" + name_ + "': " + what + " at byte " + std::to_string(at) + " needs " +
        std::to_string(bytes) + " more bytes of memory; the header may use at most " +
        std::to_string(kMaxHeaderHeapBytes >> 20) + " MiB (" + std::to_string(heap_) +
        " used so far): the file is corrupt or not a model hangar can serve");
  }
  heap_ += bytes;
  return ok_status();
}

Status GgufParser::parse(GgufFile* f) {
  f->file_size_ = size_;
  uint32_t magic = 0;
  if (size_ < 4 || std::memcmp(p_, "GGUF", 4) != 0) {
    if (size_ < 4) return error(0, "file is " + std::to_string(size_) + " bytes, too short for the magic");
    return error(0, "bad magic (not a GGUF file)");
  }
  HANGAR_RETURN_IF_ERROR(read(&magic, "the magic"));
  const uint64_t version_at = pos_;
  HANGAR_RETURN_IF_ERROR(read(&f->version_, "the version"));
  if (f->version_ != 2 && f->version_ != 3) {
    return error(version_at, "unsupported GGUF version " + std::to_string(f->version_) +
                                 " (only 2 and 3 are read)");
  }
  const uint64_t tensor_count_at = pos_;
  uint64_t tensor_count = 0, kv_count = 0;
  HANGAR_RETURN_IF_ERROR(read(&tensor_count, "the tensor count"));
  const uint64_t kv_count_at = pos_;
  HANGAR_RETURN_IF_ERROR(read(&kv_count, "the metadata count"));
  // A tensor info takes at least 24 bytes (name length, n_dims, type, offset); a key/value 13.
  if (tensor_count > left() / 24) {
    return error(tensor_count_at, "tensor count " + std::to_string(tensor_count) +
                                      " cannot fit in the " + std::to_string(left()) +
                                      " bytes left in the file");
  }
  if (kv_count > left() / 13) {
    return error(kv_count_at, "metadata count " + std::to_string(kv_count) +
                                  " cannot fit in the " + std::to_string(left()) +
                                  " bytes left in the file");
  }
  if (tensor_count > kMaxTensors) {
    return error(tensor_count_at, "tensor count " + std::to_string(tensor_count) +
                                      " is above the limit of " + std::to_string(kMaxTensors));
  }
  if (kv_count > kMaxMetadataKeys) {
    return error(kv_count_at, "metadata count " + std::to_string(kv_count) +
                                  " is above the limit of " + std::to_string(kMaxMetadataKeys));
  }
  // The tables sized by the counts: an entry and a hash-index node per key and per tensor.
  constexpr uint64_t kIndexNodeBytes = 64;
  HANGAR_RETURN_IF_ERROR(charge(kv_count * (sizeof(std::pair<std::string, Value>) + kIndexNodeBytes),
                                kv_count_at, "the metadata table"));
  HANGAR_RETURN_IF_ERROR(charge(tensor_count * (sizeof(TensorInfo) + kIndexNodeBytes +
                                                kMaxDims * sizeof(int64_t)),
                                tensor_count_at, "the tensor table"));

  f->metadata_.reserve(kv_count);
  uint64_t alignment_at = 0;
  for (uint64_t i = 0; i < kv_count; ++i) {
    const uint64_t key_at = pos_;
    std::string key;
    HANGAR_RETURN_IF_ERROR(read_string(&key, "metadata key #" + std::to_string(i)));
    if (f->metadata_index_.count(key)) return error(key_at, "duplicate metadata key '" + key + "'");
    const uint64_t type_at = pos_;
    uint32_t type = 0;
    HANGAR_RETURN_IF_ERROR(read(&type, "a value type"));
    if (!is_value_type(type)) {
      return error(type_at, "key '" + key + "' has unknown value type " + std::to_string(type));
    }
    Value v;
    if (key == "general.alignment") alignment_at = type_at + 4;
    HANGAR_RETURN_IF_ERROR(read_value(static_cast<ValueType>(type), &v, key, 0));
    f->metadata_index_.emplace(key, f->metadata_.size());
    f->metadata_.emplace_back(std::move(key), std::move(v));
  }

  if (const Value* a = f->find("general.alignment")) {
    const std::optional<uint64_t> al = a->as_uint();
    if (!al || *al == 0 || *al > kMaxAlignment || (*al & (*al - 1)) != 0) {
      return error(alignment_at, "general.alignment must be a power of two up to 2^30, got " +
                                     (al ? std::to_string(*al)
                                         : std::string(value_type_name(a->type))));
    }
    f->alignment_ = static_cast<uint32_t>(*al);
  }

  f->tensors_.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    const uint64_t info_at = pos_;
    TensorInfo t;
    HANGAR_RETURN_IF_ERROR(read_string(&t.name, "tensor #" + std::to_string(i) + " name"));
    if (f->tensor_index_.count(t.name)) return error(info_at, "duplicate tensor name '" + t.name + "'");
    const std::string what = "tensor '" + t.name + "'";
    const uint64_t dims_at = pos_;
    uint32_t n_dims = 0;
    HANGAR_RETURN_IF_ERROR(read(&n_dims, "a tensor's dimension count"));
    if (n_dims > kMaxDims) {
      return error(dims_at, what + " has " + std::to_string(n_dims) + " dimensions (at most 4)");
    }
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne_at = pos_;
      int64_t ne = 0;
      HANGAR_RETURN_IF_ERROR(read(&ne, "a tensor dimension"));
      if (ne < 0) return error(ne_at, what + " has negative dimension " + std::to_string(ne));
      if (ne != 0 && n_elements > std::numeric_limits<int64_t>::max() / ne) {
        return error(ne_at, what + ": element count overflows 64 bits at dimension " +
                                std::to_string(d));
      }
      n_elements *= ne;
      t.shape.push_back(ne);
    }
    const uint64_t type_at = pos_;
    uint32_t type = 0;
    HANGAR_RETURN_IF_ERROR(read(&type, "a tensor type"));
    const std::optional<TypeTraits> traits = type_traits(type);
    if (!traits) return error(type_at, what + " has unknown ggml type " + std::to_string(type));
    t.type = traits->type;
    const int64_t ne0 = t.shape.empty() ? 1 : t.shape[0];
    const std::optional<uint64_t> rb = row_bytes(t.type, ne0);
    if (!rb) {
      return error(type_at, what + ": row of " + std::to_string(ne0) + " elements is not a multiple of the " +
                                std::string(traits->name) + " block size " +
                                std::to_string(traits->block_size));
    }
    const uint64_t rows = ne0 == 0 ? 0 : static_cast<uint64_t>(n_elements / ne0);
    if (rows != 0 && *rb > std::numeric_limits<uint64_t>::max() / rows) {
      return error(type_at, what + ": byte size overflows 64 bits");
    }
    t.bytes = *rb * rows;
    const uint64_t offset_at = pos_;
    HANGAR_RETURN_IF_ERROR(read(&t.offset, "a tensor offset"));
    if (t.offset % f->alignment_ != 0) {
      return error(offset_at, what + " offset " + std::to_string(t.offset) +
                                  " is not a multiple of the alignment " +
                                  std::to_string(f->alignment_));
    }
    f->tensor_index_.emplace(t.name, f->tensors_.size());
    f->tensors_.push_back(std::move(t));
  }

  // The data region starts at the first aligned offset after the header.
  const uint64_t header_end = pos_;
  const uint64_t rem = header_end % f->alignment_;
  f->data_offset_ = rem == 0 ? header_end : header_end + (f->alignment_ - rem);
  if (!f->tensors_.empty() && f->data_offset_ > size_) {
    return error(header_end, "the data region would start at byte " +
                                 std::to_string(f->data_offset_) + " but the file has " +
                                 std::to_string(size_) + " bytes");
  }
  f->header_heap_bytes_ = heap_;
  const uint64_t data_size = f->data_offset_ <= size_ ? size_ - f->data_offset_ : 0;
  for (TensorInfo& t : f->tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset) {
      return error(f->data_offset_ + std::min(t.offset, data_size),
                   "tensor '" + t.name + "' (" + std::to_string(t.bytes) + " bytes at data offset " +
                       std::to_string(t.offset) + ") ends past the end of the file (" +
                       std::to_string(data_size) + " data bytes)");
    }
    t.data = p_ + f->data_offset_ + t.offset;
  }
  return ok_status();
}

// ---- GgufFile -------------------------------------------------------------------------------

namespace {

// The parser charges every allocation against kMaxHeaderHeapBytes, so running out of memory is
// not expected; should an allocation fail all the same (a small container, an overcommit
// limit), it is a Status like every other failure, never an abort.
Status parse_guarded(const uint8_t* bytes, size_t size, GgufFile* f) {
  try {
    GgufParser parser(bytes, size, f->path());
    return parser.parse(f);
  } catch (const std::bad_alloc&) {
    return resource_exhausted_error("gguf '" + f->path() +
                                    "': out of memory while reading the header");
  } catch (const std::length_error&) {
    return resource_exhausted_error("gguf '" + f->path() + "': the header is too large to read");
  }
}

}  // namespace

StatusOr<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* bytes, size_t size,
                                                    std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = std::move(name);
  HANGAR_RETURN_IF_ERROR(parse_guarded(bytes, size, f.get()));
  return f;
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = "gguf: cannot open '" + path + "': " + std::strerror(err);
    return err == ENOENT ? not_found_error(msg) : invalid_argument_error(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument_error("gguf: '" + path + "' is not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = nullptr;
  if (size > 0) {
    map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return resource_exhausted_error("gguf: cannot map '" + path + "' (" + std::to_string(size) +
                                      " bytes): " + std::strerror(err));
    }
  }
  ::close(fd);  // the mapping keeps the file open
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->map_ = map;
  f->map_size_ = size;
  static const uint8_t kEmpty = 0;
  const uint8_t* bytes = map ? static_cast<const uint8_t*>(map) : &kEmpty;
  HANGAR_RETURN_IF_ERROR(parse_guarded(bytes, size, f.get()));
  return f;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

const Value* GgufFile::find(std::string_view key) const {
  auto it = metadata_index_.find(std::string(key));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_int() : std::nullopt;
}
std::optional<double> GgufFile::get_float(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_float() : std::nullopt;
}
std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_bool() : std::nullopt;
}
const std::string* GgufFile::get_string(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_string() : nullptr;
}
const Array* GgufFile::get_array(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_array() : nullptr;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string GgufFile::architecture() const {
  const std::string* a = get_string("general.architecture");
  return a ? *a : std::string();
}

}  // namespace hangar::gguf
